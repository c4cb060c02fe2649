//! The real OpenTelemetry Java agent on the real Spring Boot examples, trained and verified by
//! classcache-build through the Docker runtime on JDK 17 (dynamic CDS) and JDK 25 (AOT cache),
//! for a workload that attaches the agent the image ships, as fleets do.

use classcache_core::jvm::AGENT_MODULES_OPTION;
use classcache_e2e::apps::{otel_agent_jar, train_spring_boot, SpringBoot, OTEL_AGENT_IN_IMAGE};
use classcache_e2e::step;
use serde_json::Value;

fn runtime_options(report: &Value) -> Vec<String> {
    serde_json::from_value(report["archive"]["runtimeOptions"].clone()).unwrap()
}

#[test]
fn spring_boot_with_the_opentelemetry_agent_is_trained_for_the_agent_the_image_ships() {
    let agent_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(otel_agent_jar()).unwrap(),
        ))
    };
    for (boot, kind) in [
        (SpringBoot::Three, "dynamic-cds"),
        (SpringBoot::Four, "aot-cache"),
    ] {
        step(&format!(
            "Spring Boot {} on JDK {} with the agent at {OTEL_AGENT_IN_IMAGE}",
            boot.version(),
            boot.jdk()
        ));
        let h = classcache_e2e::harness();
        let report = train_spring_boot(h, boot, true, &["--verify-runs", "0"]);
        assert_eq!(report["kind"], kind, "{report:#}");
        let agent = &report["archive"]["agent"];
        assert_eq!(agent["path"], OTEL_AGENT_IN_IMAGE, "{report:#}");
        assert_eq!(
            agent["sha256"],
            agent_sha256.as_str(),
            "hashed in the image"
        );
        assert_eq!(agent["mode"], "attached");
        let options = runtime_options(&report);
        assert!(
            !options.iter().any(|o| o.starts_with("-javaagent")),
            "the workload attaches the agent itself: {options:?}"
        );
        assert_eq!(
            options.iter().any(|o| o == AGENT_MODULES_OPTION),
            kind == "aot-cache",
            "an AOT cache is made with the module graph of a JVM running an agent: {options:?}"
        );
        // Verified with the agent attached, as production runs it.
        let from_archive = report["classes"]["fromArchive"].as_u64().unwrap();
        eprintln!(
            "JDK {}: {from_archive} of {} classes from the archive with the agent attached",
            boot.jdk(),
            report["classes"]["total"]
        );
        assert!(from_archive >= 10_000, "{report:#}");
        assert!(
            report["archive"]["reference"].as_str().is_some(),
            "pushed: {report:#}"
        );
    }
}
