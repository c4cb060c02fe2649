package com.example.petclinic.web;

import com.example.petclinic.api.PetRequest;
import com.example.petclinic.api.PetView;
import com.example.petclinic.service.ClinicService;
import jakarta.validation.Valid;
import java.net.URI;
import java.util.List;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RestController;

/** /owners/{ownerId}/pets: an owner's pets. */
@RestController
@RequestMapping("/owners/{ownerId}/pets")
public class PetController {

    private final ClinicService clinic;

    public PetController(ClinicService clinic) {
        this.clinic = clinic;
    }

    @GetMapping
    public List<PetView> list(@PathVariable("ownerId") int ownerId) {
        return clinic.pets(ownerId);
    }

    @PostMapping
    public ResponseEntity<PetView> add(@PathVariable("ownerId") int ownerId, @Valid @RequestBody PetRequest request) {
        PetView pet = clinic.addPet(ownerId, request);
        return ResponseEntity.created(URI.create("/owners/" + ownerId + "/pets/" + pet.id())).body(pet);
    }
}
