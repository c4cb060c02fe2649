package com.example.shop;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Logger;
import java.util.stream.Collectors;

/** Orders in memory, with expiry: the shop's "database". */
public final class OrderStore {
    private static final Logger LOG = Logger.getLogger(OrderStore.class.getName());
    private static final DateTimeFormatter STAMP = DateTimeFormatter.ISO_OFFSET_DATE_TIME.withZone(ZoneOffset.UTC);

    public record OrderLine(String sku, int quantity, BigDecimal unitPrice) {
        BigDecimal total() {
            return unitPrice.multiply(BigDecimal.valueOf(quantity));
        }
    }

    public record Order(String id, String customer, List<OrderLine> lines, Instant created) {
        BigDecimal total() {
            return lines.stream().map(OrderLine::total).reduce(BigDecimal.ZERO, BigDecimal::add)
                .setScale(2, RoundingMode.HALF_EVEN);
        }

        Map<String, Object> toMap() {
            return Map.of("id", id, "customer", customer, "lines", lines.size(),
                "total", total().toPlainString(), "created", STAMP.format(created));
        }
    }

    private final Map<String, Order> orders = new ConcurrentHashMap<>();
    private final AtomicLong placed = new AtomicLong();
    private final Clock clock;
    private final Duration ttl;

    public OrderStore(Clock clock, Duration ttl) {
        this.clock = clock;
        this.ttl = ttl;
    }

    public Order place(String customer, List<OrderLine> lines) {
        if (lines.isEmpty()) {
            throw new IllegalArgumentException("an order needs at least one line");
        }
        Order order = new Order(UUID.randomUUID().toString(), customer, List.copyOf(lines), clock.instant());
        orders.put(order.id(), order);
        placed.incrementAndGet();
        LOG.fine(() -> "placed " + order.id() + " for " + customer);
        return order;
    }

    public Optional<Order> find(String id) {
        return Optional.ofNullable(orders.get(id));
    }

    public int expire() {
        Instant cutoff = clock.instant().minus(ttl);
        List<String> old = orders.values().stream().filter(o -> o.created().isBefore(cutoff))
            .map(Order::id).collect(Collectors.toList());
        old.forEach(orders::remove);
        return old.size();
    }

    public Map<String, Object> stats() {
        BigDecimal revenue = orders.values().stream().map(Order::total).reduce(BigDecimal.ZERO, BigDecimal::add);
        return Map.of("open", orders.size(), "placed", placed.get(), "revenue", revenue.toPlainString());
    }

    public List<Map<String, Object>> recent(int limit) {
        return orders.values().stream()
            .sorted((a, b) -> b.created().compareTo(a.created()))
            .limit(limit).map(Order::toMap).collect(Collectors.toList());
    }
}
