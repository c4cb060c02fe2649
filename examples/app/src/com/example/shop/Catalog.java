package com.example.shop;

import com.example.shop.modules.ModuleIndex;
import java.lang.reflect.Constructor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/** The catalog modules, instantiated by reflection from the generated index (a component scan). */
public final class Catalog {
    private static final Logger LOG = Logger.getLogger(Catalog.class.getName());
    private final List<Module> modules;

    private Catalog(List<Module> modules) {
        this.modules = Collections.unmodifiableList(modules);
    }

    public static Catalog scan(ClassLoader loader) throws ReflectiveOperationException {
        List<Module> modules = new ArrayList<>();
        for (String name : ModuleIndex.CLASS_NAMES) {
            Class<?> type = Class.forName(name, true, loader);
            if (!Module.class.isAssignableFrom(type)) {
                throw new IllegalStateException(name + " is not a Module");
            }
            Constructor<?> constructor = type.getDeclaredConstructor();
            Module module = (Module) constructor.newInstance();
            module.summary();
            modules.add(module);
        }
        LOG.info(() -> "catalog: " + modules.size() + " modules");
        return new Catalog(modules);
    }

    public int size() {
        return modules.size();
    }

    /** One page of module summaries; the query is `page=N`. */
    public Map<String, Object> page(String query) {
        int page = 0;
        if (query != null && query.matches("page=\\d+")) {
            page = Integer.parseInt(query.substring(5));
        }
        int from = Math.min(modules.size(), page * 20);
        int to = Math.min(modules.size(), from + 20);
        List<Map<String, Object>> items = new ArrayList<>();
        for (Module m : modules.subList(from, to)) {
            items.add(m.summary());
        }
        return Map.of("page", page, "modules", modules.size(), "items", items);
    }
}
