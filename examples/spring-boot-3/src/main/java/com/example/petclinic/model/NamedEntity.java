package com.example.petclinic.model;

import jakarta.persistence.Column;
import jakarta.persistence.MappedSuperclass;
import jakarta.validation.constraints.NotBlank;

/** An entity with a name: pets, pet types, specialties. */
@MappedSuperclass
public abstract class NamedEntity extends BaseEntity {

    @Column(name = "name")
    @NotBlank
    private String name;

    public String getName() {
        return name;
    }

    public void setName(String name) {
        this.name = name;
    }

    @Override
    public String toString() {
        return name;
    }
}
