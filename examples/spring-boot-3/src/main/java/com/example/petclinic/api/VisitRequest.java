package com.example.petclinic.api;

import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.Size;
import java.time.LocalDate;

/** The body of POST /owners/{ownerId}/pets/{petId}/visits; the date defaults to today. */
public record VisitRequest(LocalDate date, @NotBlank @Size(max = 255) String description) {
}
