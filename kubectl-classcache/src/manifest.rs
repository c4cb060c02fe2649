//! Reading and writing manifests: multi-document YAML (or JSON), `List` objects, files,
//! directories and stdin. It parses and prints; it must not edit objects.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::Read;
use std::path::Path;

use crate::cli::Output;

/// One source's documents, in order, with the name used in messages.
pub struct Source {
    pub name: String,
    pub documents: Vec<Value>,
}

/// Parses multi-document YAML (JSON is YAML too); empty documents are dropped.
pub fn parse_documents(text: &str, name: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).with_context(|| {
        format!(
            "{name} is not valid YAML; fix the file, or pass Kubernetes manifests (YAML or JSON)"
        )
    })?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    for (i, doc) in docs.iter().enumerate() {
        if doc.get("kind").and_then(Value::as_str).is_none() {
            bail!(
                "document {} of {name} is not a Kubernetes object (it has no `kind`); pass Kubernetes manifests",
                i + 1
            );
        }
    }
    Ok(docs)
}

/// Reads `-f` arguments: files, directories (their `*.yaml`, `*.yml`, `*.json`, sorted, not
/// recursive, like kubectl) and `-` for stdin.
pub fn read_sources(paths: &[String]) -> Result<Vec<Source>> {
    let mut sources = vec![];
    for path in paths {
        if path == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            sources.push(Source {
                documents: parse_documents(&text, "stdin")?,
                name: "stdin".into(),
            });
            continue;
        }
        let p = Path::new(path);
        let meta = std::fs::metadata(p)
            .with_context(|| format!("cannot read {path}; check the path given to -f"))?;
        let files = if meta.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list directory {path}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("directory {path} holds no *.yaml, *.yml or *.json files; point -f at your manifests");
            }
            files
        } else {
            vec![p.to_path_buf()]
        };
        for file in files {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {name} as UTF-8 text"))?;
            sources.push(Source {
                documents: parse_documents(&text, &name)?,
                name,
            });
        }
    }
    Ok(sources)
}

/// True for `List` and `*List` kinds, whose `items` are the objects.
pub fn is_list(doc: &Value) -> bool {
    doc.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && doc.get("items").is_some()
}

/// Every object in the documents, `List` items in place of their list, mutable.
pub fn objects_mut(docs: &mut [Value]) -> Vec<&mut Value> {
    let mut out = vec![];
    for doc in docs.iter_mut() {
        if is_list(doc) {
            if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
                out.extend(items.iter_mut());
            }
        } else {
            out.push(doc);
        }
    }
    out
}

/// Prints documents as multi-document YAML, or as JSON (one object, or a `List` of several).
pub fn render(docs: &[Value], output: Output) -> Result<String> {
    match output {
        Output::Yaml => {
            let mut out = String::new();
            for (i, doc) in docs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&serde_saphyr::to_string(doc).context("cannot print YAML")?);
            }
            Ok(out)
        }
        Output::Json => {
            let value = match docs {
                [one] => one.clone(),
                many => {
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": many})
                }
            };
            Ok(serde_json::to_string_pretty(&value)? + "\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_round_trips() {
        let text = "# helm\n---\napiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"true\"\n  b: \"0755\"\n---\n# empty\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: p}\n";
        let mut docs = parse_documents(text, "t.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(objects_mut(&mut docs).len(), 2);
        let printed = render(&docs, Output::Yaml).unwrap();
        assert_eq!(parse_documents(&printed, "printed").unwrap(), docs);
    }

    #[test]
    fn not_yaml_is_named() {
        let e = parse_documents("a: [\n", "broken.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("broken.yaml is not valid YAML"), "{e}");
        let e = parse_documents("just some words", "notes.txt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("document 1 of notes.txt is not a Kubernetes object"),
            "{e}"
        );
    }
}
