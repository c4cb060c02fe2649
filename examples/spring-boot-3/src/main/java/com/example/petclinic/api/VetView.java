package com.example.petclinic.api;

import com.example.petclinic.model.NamedEntity;
import com.example.petclinic.model.Vet;
import java.util.List;

/** A vet as the API shows it, with the names of their specialties. */
public record VetView(Integer id, String firstName, String lastName, List<String> specialties) {

    public static VetView of(Vet vet) {
        return new VetView(vet.getId(), vet.getFirstName(), vet.getLastName(),
                vet.getSpecialties().stream().map(NamedEntity::getName).toList());
    }
}
