package com.example.shop;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/** The shop's HTTP API on the JDK's built-in server: /ready, /orders, /catalog, /metrics. */
public final class Http {
    private static final Logger LOG = Logger.getLogger(Http.class.getName());

    private final HttpServer server;
    private final AtomicBoolean ready = new AtomicBoolean();

    public Http(int port, ExecutorService executor, OrderStore store, Catalog catalog, Metrics metrics) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        server.setExecutor(executor);
        server.createContext("/ready", ex -> {
            boolean up = ready.get();
            respond(ex, up ? 200 : 503, Map.of("ready", up));
        });
        server.createContext("/orders", metrics.timed("orders", ex -> handleOrders(ex, store)));
        server.createContext("/catalog", metrics.timed("catalog", ex -> respond(ex, 200, catalog.page(ex.getRequestURI().getQuery()))));
        server.createContext("/metrics", ex -> respond(ex, 200, metrics.snapshot()));
    }

    private void handleOrders(HttpExchange ex, OrderStore store) throws IOException {
        switch (ex.getRequestMethod()) {
            case "POST" -> {
                Map<String, String> body = Json.readFlat(read(ex.getRequestBody()));
                List<OrderStore.OrderLine> lines = new ArrayList<>();
                int quantity = Integer.parseInt(body.getOrDefault("quantity", "1"));
                lines.add(new OrderStore.OrderLine(body.getOrDefault("sku", "ABC-0001"), quantity,
                    new BigDecimal(body.getOrDefault("price", "9.99"))));
                try {
                    respond(ex, 201, store.place(body.getOrDefault("customer", "anonymous"), lines).toMap());
                } catch (IllegalArgumentException e) {
                    respond(ex, 400, Map.of("error", e.getMessage()));
                }
            }
            case "GET" -> respond(ex, 200, Map.of("recent", store.recent(10), "stats", store.stats()));
            default -> respond(ex, 405, Map.of("error", "method not allowed"));
        }
    }

    private static String read(InputStream in) throws IOException {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }

    static void respond(HttpExchange ex, int status, Object body) throws IOException {
        byte[] bytes = Json.write(body).getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().add("Content-Type", "application/json");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    public void start() {
        server.start();
        ready.set(true);
        LOG.info(() -> "listening on " + server.getAddress());
    }

    public int port() {
        return server.getAddress().getPort();
    }

    public void stop() {
        ready.set(false);
        server.stop(0);
        LOG.log(Level.INFO, "stopped");
    }
}
