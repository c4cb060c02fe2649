package com.example.petclinic.repository;

import com.example.petclinic.model.Vet;
import java.util.List;
import org.springframework.data.jpa.repository.EntityGraph;
import org.springframework.data.jpa.repository.JpaRepository;

/** The clinic's vets with their specialties. */
public interface VetRepository extends JpaRepository<Vet, Integer> {

    @EntityGraph(attributePaths = "specialties")
    List<Vet> findAllByOrderByLastNameAscFirstNameAsc();
}
