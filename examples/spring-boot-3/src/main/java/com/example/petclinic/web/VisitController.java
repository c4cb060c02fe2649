package com.example.petclinic.web;

import com.example.petclinic.api.VisitRequest;
import com.example.petclinic.api.VisitView;
import com.example.petclinic.service.ClinicService;
import jakarta.validation.Valid;
import java.util.List;
import org.springframework.http.HttpStatus;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.ResponseStatus;
import org.springframework.web.bind.annotation.RestController;

/** /owners/{ownerId}/pets/{petId}/visits: a pet's visits. */
@RestController
@RequestMapping("/owners/{ownerId}/pets/{petId}/visits")
public class VisitController {

    private final ClinicService clinic;

    public VisitController(ClinicService clinic) {
        this.clinic = clinic;
    }

    @GetMapping
    public List<VisitView> list(@PathVariable("ownerId") int ownerId, @PathVariable("petId") int petId) {
        return clinic.visits(ownerId, petId);
    }

    @PostMapping
    @ResponseStatus(HttpStatus.CREATED)
    public VisitView add(@PathVariable("ownerId") int ownerId, @PathVariable("petId") int petId,
            @Valid @RequestBody VisitRequest request) {
        return clinic.addVisit(ownerId, petId, request);
    }
}
