package com.example.shop;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPath;
import javax.xml.xpath.XPathConstants;
import javax.xml.xpath.XPathFactory;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/** The shop's settings: an XML document (as many services still have), overridable by env. */
public record Config(int port, int workers, Duration orderTtl, Map<String, String> features) {
    private static final String DEFAULTS = """
        <shop>
          <http port="8080" workers="4"/>
          <orders ttl="PT30M"/>
          <features>
            <feature name="discounts" value="on"/>
            <feature name="audit" value="on"/>
            <feature name="recommendations" value="off"/>
          </features>
        </shop>
        """;

    public static Config load(Map<String, String> env) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        Document doc = factory.newDocumentBuilder()
            .parse(new ByteArrayInputStream(DEFAULTS.getBytes(StandardCharsets.UTF_8)));
        XPath xpath = XPathFactory.newInstance().newXPath();
        int port = Integer.parseInt(xpath.evaluate("/shop/http/@port", doc));
        int workers = Integer.parseInt(xpath.evaluate("/shop/http/@workers", doc));
        Duration ttl = Duration.parse(xpath.evaluate("/shop/orders/@ttl", doc));
        Map<String, String> features = new LinkedHashMap<>();
        NodeList nodes = (NodeList) xpath.evaluate("/shop/features/feature", doc, XPathConstants.NODESET);
        for (int i = 0; i < nodes.getLength(); i++) {
            Element e = (Element) nodes.item(i);
            features.put(e.getAttribute("name"), e.getAttribute("value"));
        }
        if (env.containsKey("PORT")) {
            port = Integer.parseInt(env.get("PORT"));
        }
        return new Config(port, workers, ttl, features);
    }

    public boolean enabled(String feature) {
        return "on".equals(features.get(feature));
    }
}
