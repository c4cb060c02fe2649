package com.example.petclinic.repository;

import com.example.petclinic.model.PetType;
import java.util.List;
import java.util.Optional;
import org.springframework.data.jpa.repository.JpaRepository;

/** The kinds of pet the clinic treats. */
public interface PetTypeRepository extends JpaRepository<PetType, Integer> {

    List<PetType> findAllByOrderByName();

    Optional<PetType> findByNameIgnoreCase(String name);
}
