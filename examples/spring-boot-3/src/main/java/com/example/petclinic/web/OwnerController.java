package com.example.petclinic.web;

import com.example.petclinic.api.OwnerRequest;
import com.example.petclinic.api.OwnerView;
import com.example.petclinic.service.ClinicService;
import jakarta.validation.Valid;
import java.net.URI;
import java.util.List;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.PutMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;

/** /owners: list (by last-name prefix), read, create, update. */
@RestController
@RequestMapping("/owners")
public class OwnerController {

    private final ClinicService clinic;

    public OwnerController(ClinicService clinic) {
        this.clinic = clinic;
    }

    @GetMapping
    public List<OwnerView> list(@RequestParam(name = "lastName", required = false) String lastName) {
        return clinic.findOwners(lastName);
    }

    @GetMapping("/{ownerId}")
    public OwnerView get(@PathVariable("ownerId") int ownerId) {
        return clinic.owner(ownerId);
    }

    @PostMapping
    public ResponseEntity<OwnerView> create(@Valid @RequestBody OwnerRequest request) {
        OwnerView created = clinic.createOwner(request);
        return ResponseEntity.created(URI.create("/owners/" + created.id())).body(created);
    }

    @PutMapping("/{ownerId}")
    public OwnerView update(@PathVariable("ownerId") int ownerId, @Valid @RequestBody OwnerRequest request) {
        return clinic.updateOwner(ownerId, request);
    }
}
