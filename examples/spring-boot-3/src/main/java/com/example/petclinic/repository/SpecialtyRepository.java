package com.example.petclinic.repository;

import com.example.petclinic.model.Specialty;
import org.springframework.data.jpa.repository.JpaRepository;

/** Vets' specialties. */
public interface SpecialtyRepository extends JpaRepository<Specialty, Integer> {
}
