// Generates the example shop's catalog modules: a few hundred small classes (records, enums,
// services with lambdas) so the app loads as many of its own classes as a real service does.
// Run by examples/build-example-app.sh as `java GenerateModules.java OUT_DIR COUNT`.

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

public class GenerateModules {
    public static void main(String[] args) throws IOException {
        Path out = Path.of(args[0]);
        int count = Integer.parseInt(args[1]);
        List<String> services = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String pkg = "com.example.shop.modules.group" + (i / 25);
            Path dir = out.resolve(pkg.replace('.', '/'));
            Files.createDirectories(dir);
            String n = String.format("%03d", i);
            Files.writeString(dir.resolve("Sku" + n + ".java"), """
                package %1$s;

                /** A catalog entry of product line %2$s. */
                public record Sku%2$s(String id, String name, java.math.BigDecimal price, int stock) {
                    public Sku%2$s {
                        if (!id.matches("[A-Z]{3}-\\\\d{4}")) throw new IllegalArgumentException("bad sku " + id);
                    }
                    public java.math.BigDecimal value() { return price.multiply(java.math.BigDecimal.valueOf(stock)); }
                }
                """.formatted(pkg, n));
            Files.writeString(dir.resolve("Status" + n + ".java"), """
                package %1$s;

                /** Life cycle of an order line of product line %2$s. */
                public enum Status%2$s {
                    NEW, RESERVED, SHIPPED, DELIVERED, RETURNED;
                    public boolean terminal() { return this == DELIVERED || this == RETURNED; }
                }
                """.formatted(pkg, n));
            Files.writeString(dir.resolve("Service" + n + ".java"), """
                package %1$s;

                import com.example.shop.Module;
                import java.math.BigDecimal;
                import java.util.List;
                import java.util.Map;
                import java.util.stream.Collectors;
                import java.util.stream.IntStream;

                /** Prices, stock and order states of product line %2$s. */
                public final class Service%2$s implements Module {
                    private final List<Sku%2$s> skus = IntStream.range(0, 8)
                        .mapToObj(i -> new Sku%2$s(String.format("ABC-%%04d", %3$d * 10 + i), "item " + i,
                            BigDecimal.valueOf(100 + i * %3$d, 2), i * 3))
                        .collect(Collectors.toList());

                    @Override public String name() { return "line-%2$s"; }

                    @Override public Map<String, Object> summary() {
                        BigDecimal total = skus.stream().map(Sku%2$s::value).reduce(BigDecimal.ZERO, BigDecimal::add);
                        long open = skus.stream().map(s -> Status%2$s.values()[s.stock() %% Status%2$s.values().length])
                            .filter(st -> !st.terminal()).count();
                        return Map.of("line", name(), "skus", skus.size(), "stockValue", total.toPlainString(), "open", open);
                    }
                }
                """.formatted(pkg, n, i));
            services.add(pkg + ".Service" + n);
        }
        Path index = out.resolve("com/example/shop/modules/ModuleIndex.java");
        Files.createDirectories(index.getParent());
        StringBuilder names = new StringBuilder();
        for (String s : services) names.append("        \"").append(s).append("\",\n");
        Files.writeString(index, """
            package com.example.shop.modules;

            /** The generated modules, loaded by name at start like a DI container's component scan. */
            public final class ModuleIndex {
                private ModuleIndex() {}
                public static final String[] CLASS_NAMES = {
            %s    };
            }
            """.formatted(names));
    }
}
