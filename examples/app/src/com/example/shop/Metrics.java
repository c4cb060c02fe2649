package com.example.shop;

import com.sun.net.httpserver.HttpHandler;
import java.io.IOException;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/** Request counts and latencies per route. */
public final class Metrics {
    private final Map<String, LongAdder> counts = new ConcurrentHashMap<>();
    private final Map<String, LongAdder> nanos = new ConcurrentHashMap<>();

    public HttpHandler timed(String route, HttpHandler handler) {
        return exchange -> {
            long start = System.nanoTime();
            try {
                handler.handle(exchange);
            } catch (IOException | RuntimeException e) {
                Http.respond(exchange, 500, Map.of("error", String.valueOf(e.getMessage())));
            } finally {
                counts.computeIfAbsent(route, r -> new LongAdder()).increment();
                nanos.computeIfAbsent(route, r -> new LongAdder()).add(System.nanoTime() - start);
            }
        };
    }

    public Map<String, Object> snapshot() {
        Map<String, Object> out = new TreeMap<>();
        counts.forEach((route, count) -> out.put(route, Map.of("count", count.sum(),
            "meanMicros", nanos.get(route).sum() / Math.max(1, count.sum()) / 1000)));
        return out;
    }
}
