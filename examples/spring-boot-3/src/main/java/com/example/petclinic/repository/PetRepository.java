package com.example.petclinic.repository;

import com.example.petclinic.model.Pet;
import java.util.List;
import org.springframework.data.jpa.repository.JpaRepository;

/** Pets, by owner. */
public interface PetRepository extends JpaRepository<Pet, Integer> {

    List<Pet> findByOwnerIdOrderByName(Integer ownerId);
}
