# A Spring Boot service (petclinic.jar, from examples/spring-apps.sh) on a JVM image, the way
# Spring Boot documents it: a build stage extracts the jar with its tools jarmode
# (`java -Djarmode=tools -jar petclinic.jar extract`), the image runs the extracted jar, whose
# manifest names its lib/ directory. It runs as the non-root user 65532.
# The OpenTelemetry Java agent sits at /otel/opentelemetry-javaagent.jar and is not attached:
# production attaches it with JAVA_TOOL_OPTIONS=-javaagent:/otel/opentelemetry-javaagent.jar
# (and OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none where no collector listens).
# BASE is any image with a JDK 17+ (java on PATH); the tests use the harness's
# classcache-test/jdk17 (Boot 3) and classcache-test/jdk25 (Boot 4).
ARG BASE=eclipse-temurin:25-jre

FROM ${BASE} AS extract
WORKDIR /builder
COPY petclinic.jar petclinic.jar
RUN java -Djarmode=tools -jar petclinic.jar extract --destination extracted

FROM ${BASE}
COPY opentelemetry-javaagent.jar /otel/opentelemetry-javaagent.jar
COPY --from=extract /builder/extracted/ /app/
WORKDIR /app
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["java", "-jar", "/app/petclinic.jar"]
