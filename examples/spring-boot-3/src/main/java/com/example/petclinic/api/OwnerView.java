package com.example.petclinic.api;

import com.example.petclinic.model.Owner;
import java.util.List;

/** An owner as the API shows it, with their pets. */
public record OwnerView(Integer id, String firstName, String lastName, String address, String city,
        String telephone, List<PetView> pets) {

    public static OwnerView of(Owner owner) {
        return new OwnerView(owner.getId(), owner.getFirstName(), owner.getLastName(), owner.getAddress(),
                owner.getCity(), owner.getTelephone(), owner.getPets().stream().map(PetView::of).toList());
    }
}
