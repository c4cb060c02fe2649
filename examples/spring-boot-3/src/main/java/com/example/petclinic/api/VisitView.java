package com.example.petclinic.api;

import com.example.petclinic.model.Visit;
import java.time.LocalDate;

/** A visit as the API shows it. */
public record VisitView(Integer id, Integer petId, LocalDate date, String description) {

    public static VisitView of(Visit visit) {
        return new VisitView(visit.getId(), visit.getPet().getId(), visit.getDate(), visit.getDescription());
    }
}
