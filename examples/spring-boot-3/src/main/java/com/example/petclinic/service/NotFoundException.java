package com.example.petclinic.service;

/** A requested owner, pet or pet type does not exist; the API answers 404. */
public class NotFoundException extends RuntimeException {

    public NotFoundException(String what, Object id) {
        super(what + " " + id + " not found");
    }
}
