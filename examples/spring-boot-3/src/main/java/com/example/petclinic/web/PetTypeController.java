package com.example.petclinic.web;

import com.example.petclinic.service.ClinicService;
import java.util.List;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/** /pettypes: the names a new pet's type may take. */
@RestController
public class PetTypeController {

    private final ClinicService clinic;

    public PetTypeController(ClinicService clinic) {
        this.clinic = clinic;
    }

    @GetMapping("/pettypes")
    public List<String> list() {
        return clinic.petTypes();
    }
}
