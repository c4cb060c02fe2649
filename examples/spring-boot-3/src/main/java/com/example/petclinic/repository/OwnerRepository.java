package com.example.petclinic.repository;

import com.example.petclinic.model.Owner;
import java.util.List;
import java.util.Optional;
import org.springframework.data.jpa.repository.JpaRepository;
import org.springframework.data.jpa.repository.Query;
import org.springframework.data.repository.query.Param;

/** Owners, found by last name or with their pets fetched. */
public interface OwnerRepository extends JpaRepository<Owner, Integer> {

    @Query("SELECT DISTINCT o FROM Owner o LEFT JOIN FETCH o.pets p LEFT JOIN FETCH p.type"
            + " WHERE LOWER(o.lastName) LIKE LOWER(CONCAT(:lastName, '%')) ORDER BY o.lastName, o.firstName")
    List<Owner> findByLastNameStartingWith(@Param("lastName") String lastName);

    @Query("SELECT o FROM Owner o LEFT JOIN FETCH o.pets p LEFT JOIN FETCH p.type WHERE o.id = :id")
    Optional<Owner> findWithPetsById(@Param("id") Integer id);
}
