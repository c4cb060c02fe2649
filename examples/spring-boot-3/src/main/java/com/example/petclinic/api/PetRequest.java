package com.example.petclinic.api;

import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.NotNull;
import jakarta.validation.constraints.PastOrPresent;
import jakarta.validation.constraints.Size;
import java.time.LocalDate;

/** The body of POST /owners/{ownerId}/pets: the type is a pet type's name (GET /pettypes). */
public record PetRequest(
        @NotBlank @Size(max = 30) String name,
        @NotNull @PastOrPresent LocalDate birthDate,
        @NotBlank String type) {
}
