package com.example.petclinic.model;

import jakarta.persistence.Entity;
import jakarta.persistence.Table;

/** A vet's specialty: radiology, surgery, dentistry. */
@Entity
@Table(name = "specialties")
public class Specialty extends NamedEntity {
}
