package com.example.petclinic.api;

import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.Pattern;
import jakarta.validation.constraints.Size;

/** The body of POST /owners and PUT /owners/{id}. */
public record OwnerRequest(
        @NotBlank @Size(max = 30) String firstName,
        @NotBlank @Size(max = 30) String lastName,
        @NotBlank @Size(max = 255) String address,
        @NotBlank @Size(max = 80) String city,
        @NotBlank @Pattern(regexp = "\\d{10}", message = "must be 10 digits") String telephone) {
}
