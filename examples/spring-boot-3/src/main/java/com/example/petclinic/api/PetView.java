package com.example.petclinic.api;

import com.example.petclinic.model.Pet;
import java.time.LocalDate;

/** A pet as the API shows it. */
public record PetView(Integer id, String name, LocalDate birthDate, String type) {

    public static PetView of(Pet pet) {
        return new PetView(pet.getId(), pet.getName(), pet.getBirthDate(),
                pet.getType() == null ? null : pet.getType().getName());
    }
}
