package com.example.shop;

import java.util.Collection;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A small JSON writer and reader for the shop's flat documents (no library to download). */
public final class Json {
    private static final Pattern PAIR = Pattern.compile("\"([^\"]+)\"\\s*:\\s*(\"([^\"]*)\"|-?\\d+(\\.\\d+)?)");

    private Json() {}

    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        append(out, value);
        return out.toString();
    }

    private static void append(StringBuilder out, Object value) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof Number || value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Map<?, ?> map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : map.entrySet()) {
                if (!first) out.append(',');
                first = false;
                append(out, String.valueOf(e.getKey()));
                out.append(':');
                append(out, e.getValue());
            }
            out.append('}');
        } else if (value instanceof Collection<?> items) {
            out.append('[');
            boolean first = true;
            for (Object item : items) {
                if (!first) out.append(',');
                first = false;
                append(out, item);
            }
            out.append(']');
        } else {
            out.append('"').append(String.valueOf(value).replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
        }
    }

    /** Reads the top-level string and number fields of a flat JSON object. */
    public static Map<String, String> readFlat(String json) {
        Map<String, String> fields = new java.util.LinkedHashMap<>();
        Matcher m = PAIR.matcher(json);
        while (m.find()) {
            fields.put(m.group(1), m.group(3) != null ? m.group(3) : m.group(2));
        }
        return fields;
    }
}
