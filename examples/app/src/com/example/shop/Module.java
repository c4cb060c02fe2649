package com.example.shop;

import java.util.Map;

/** A catalog module, discovered by name at start (see modules.ModuleIndex). */
public interface Module {
    String name();

    Map<String, Object> summary();
}
