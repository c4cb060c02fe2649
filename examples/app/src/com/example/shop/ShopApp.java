package com.example.shop;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.logging.ConsoleHandler;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;

/**
 * The example shop: an order service on the JDK alone (HTTP server and client, XML config,
 * logging, concurrency, NIO, reflection) plus a few hundred catalog classes.
 *
 * <p>Modes (first argument, or APP_MODE): {@code run} starts, serves its own self-test traffic
 * and exits (what classcache trains on by default); {@code serve} serves on PORT (default 8080)
 * until SIGTERM, answering {@code /ready} once started.
 */
public final class ShopApp {
    private static final Logger LOG = Logger.getLogger("com.example.shop");

    public static void main(String[] args) throws Exception {
        long started = System.nanoTime();
        String mode = args.length > 0 ? args[0] : System.getenv().getOrDefault("APP_MODE", "run");
        if (!mode.equals("run") && !mode.equals("serve")) {
            System.err.println("usage: ShopApp [run|serve]  (got " + mode + ")");
            System.exit(2);
        }
        configureLogging();
        Config config = Config.load(System.getenv());
        ExecutorService workers = Executors.newFixedThreadPool(config.workers());
        ScheduledExecutorService timers = Executors.newSingleThreadScheduledExecutor();
        OrderStore store = new OrderStore(Clock.systemUTC(), config.orderTtl());
        Catalog catalog = Catalog.scan(ShopApp.class.getClassLoader());
        Metrics metrics = new Metrics();
        int port = mode.equals("run") ? 0 : config.port();
        Http http = new Http(port, workers, store, catalog, metrics);
        timers.scheduleAtFixedRate(store::expire, 1, 1, TimeUnit.MINUTES);
        http.start();
        long startupMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        System.out.println("shop started in " + startupMillis + " ms on port " + http.port()
            + " with " + catalog.size() + " catalog modules (mode " + mode + ")");

        Runnable shutdown = () -> {
            http.stop();
            workers.shutdown();
            timers.shutdownNow();
        };
        if (mode.equals("run")) {
            Map<String, Object> result = selfTest(http.port());
            String digest = new Housekeeping(Files.createTempDirectory("shop-journal"))
                .writeSegment(Json.write(result));
            shutdown.run();
            System.out.println("self-test " + Json.write(result) + " journal " + digest.substring(0, 12));
            return;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("shop: SIGTERM, shutting down");
            shutdown.run();
            stopped.countDown();
        }, "shutdown"));
        stopped.await();
    }

    private static void configureLogging() {
        Logger root = Logger.getLogger("");
        for (var handler : root.getHandlers()) {
            root.removeHandler(handler);
        }
        ConsoleHandler console = new ConsoleHandler();
        console.setFormatter(new SimpleFormatter());
        console.setLevel(Level.WARNING);
        root.addHandler(console);
        LOG.setLevel(Level.INFO);
    }

    /** The traffic a smoke test sends: orders in parallel, catalog pages, metrics. */
    static Map<String, Object> selfTest(int port) throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5))
            .version(HttpClient.Version.HTTP_1_1).build();
        URI base = URI.create("http://127.0.0.1:" + port);
        List<CompletableFuture<HttpResponse<String>>> posts = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            String body = Json.write(Map.of("customer", "c" + (i % 5), "sku", String.format("ABC-%04d", i),
                "quantity", 1 + i % 3, "price", "19.90"));
            posts.add(client.sendAsync(HttpRequest.newBuilder(base.resolve("/orders"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()));
        }
        CompletableFuture.allOf(posts.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
        long created = posts.stream().map(CompletableFuture::join).filter(r -> r.statusCode() == 201).count();
        int pages = 0;
        for (int page = 0; page < 3; page++) {
            HttpResponse<String> r = client.send(HttpRequest.newBuilder(base.resolve("/catalog?page=" + page)).build(),
                HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() == 200) pages++;
        }
        HttpResponse<String> orders = client.send(HttpRequest.newBuilder(base.resolve("/orders")).build(),
            HttpResponse.BodyHandlers.ofString());
        HttpResponse<String> metrics = client.send(HttpRequest.newBuilder(base.resolve("/metrics")).build(),
            HttpResponse.BodyHandlers.ofString());
        if (created != posts.size() || orders.statusCode() != 200 || metrics.statusCode() != 200) {
            throw new IllegalStateException("self-test failed: " + created + " orders created, "
                + orders.statusCode() + " " + metrics.statusCode());
        }
        return Map.of("ordersCreated", created, "catalogPages", pages, "metricsBytes", metrics.body().length());
    }
}
