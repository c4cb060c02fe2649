package com.example.petclinic.web;

import com.example.petclinic.api.VetView;
import com.example.petclinic.service.ClinicService;
import java.util.List;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/** /vets: the clinic's vets and their specialties. */
@RestController
public class VetController {

    private final ClinicService clinic;

    public VetController(ClinicService clinic) {
        this.clinic = clinic;
    }

    @GetMapping("/vets")
    public List<VetView> list() {
        return clinic.vets();
    }
}
