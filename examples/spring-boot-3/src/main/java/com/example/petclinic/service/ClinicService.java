package com.example.petclinic.service;

import com.example.petclinic.api.OwnerRequest;
import com.example.petclinic.api.OwnerView;
import com.example.petclinic.api.PetRequest;
import com.example.petclinic.api.PetView;
import com.example.petclinic.api.VetView;
import com.example.petclinic.api.VisitRequest;
import com.example.petclinic.api.VisitView;
import com.example.petclinic.model.NamedEntity;
import com.example.petclinic.model.Owner;
import com.example.petclinic.model.Pet;
import com.example.petclinic.model.PetType;
import com.example.petclinic.model.Visit;
import com.example.petclinic.repository.OwnerRepository;
import com.example.petclinic.repository.PetRepository;
import com.example.petclinic.repository.PetTypeRepository;
import com.example.petclinic.repository.VetRepository;
import com.example.petclinic.repository.VisitRepository;
import java.time.LocalDate;
import java.util.List;
import org.springframework.stereotype.Service;
import org.springframework.transaction.annotation.Transactional;

/** The clinic's use cases, each one transaction; it returns views, never entities. */
@Service
@Transactional(readOnly = true)
public class ClinicService {

    private final OwnerRepository owners;
    private final PetRepository pets;
    private final PetTypeRepository petTypes;
    private final VisitRepository visits;
    private final VetRepository vets;

    public ClinicService(OwnerRepository owners, PetRepository pets, PetTypeRepository petTypes,
            VisitRepository visits, VetRepository vets) {
        this.owners = owners;
        this.pets = pets;
        this.petTypes = petTypes;
        this.visits = visits;
        this.vets = vets;
    }

    public List<OwnerView> findOwners(String lastNamePrefix) {
        return owners.findByLastNameStartingWith(lastNamePrefix == null ? "" : lastNamePrefix).stream()
                .map(OwnerView::of)
                .toList();
    }

    public OwnerView owner(int id) {
        return OwnerView.of(loadOwner(id));
    }

    @Transactional
    public OwnerView createOwner(OwnerRequest request) {
        Owner owner = new Owner();
        apply(owner, request);
        return OwnerView.of(owners.save(owner));
    }

    @Transactional
    public OwnerView updateOwner(int id, OwnerRequest request) {
        Owner owner = loadOwner(id);
        apply(owner, request);
        return OwnerView.of(owner);
    }

    public List<PetView> pets(int ownerId) {
        loadOwner(ownerId);
        return pets.findByOwnerIdOrderByName(ownerId).stream().map(PetView::of).toList();
    }

    @Transactional
    public PetView addPet(int ownerId, PetRequest request) {
        Owner owner = loadOwner(ownerId);
        PetType type = petTypes.findByNameIgnoreCase(request.type())
                .orElseThrow(() -> new NotFoundException("pet type", request.type()));
        Pet pet = new Pet();
        pet.setName(request.name());
        pet.setBirthDate(request.birthDate());
        pet.setType(type);
        owner.addPet(pet);
        return PetView.of(pets.save(pet));
    }

    public List<VisitView> visits(int ownerId, int petId) {
        loadPet(ownerId, petId);
        return visits.findByPetIdOrderByDate(petId).stream().map(VisitView::of).toList();
    }

    @Transactional
    public VisitView addVisit(int ownerId, int petId, VisitRequest request) {
        Pet pet = loadPet(ownerId, petId);
        Visit visit = new Visit();
        visit.setDate(request.date() == null ? LocalDate.now() : request.date());
        visit.setDescription(request.description());
        pet.addVisit(visit);
        return VisitView.of(visits.save(visit));
    }

    public List<VetView> vets() {
        return vets.findAllByOrderByLastNameAscFirstNameAsc().stream().map(VetView::of).toList();
    }

    public List<String> petTypes() {
        return petTypes.findAllByOrderByName().stream().map(NamedEntity::getName).toList();
    }

    private Owner loadOwner(int id) {
        return owners.findWithPetsById(id).orElseThrow(() -> new NotFoundException("owner", id));
    }

    private Pet loadPet(int ownerId, int petId) {
        return pets.findById(petId)
                .filter(pet -> pet.getOwner().getId() == ownerId)
                .orElseThrow(() -> new NotFoundException("pet", petId));
    }

    private static void apply(Owner owner, OwnerRequest request) {
        owner.setFirstName(request.firstName());
        owner.setLastName(request.lastName());
        owner.setAddress(request.address());
        owner.setCity(request.city());
        owner.setTelephone(request.telephone());
    }
}
