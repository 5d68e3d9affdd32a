//! The task file (YAML, version 1) a requester writes; see docs/task-spec.md.

use crate::bundle::Manifest;
use crate::task::{
    CompareMode, MatchStrategy, Nondeterminism, Runtime, TaskKind, TaskTerms, Verification,
    MICROS_PER_UNIT, REPLICAS_MAX, SUMMARY_MICROS_MAX, SUMMARY_PATH_BYTES_MAX,
};
use crate::{Amount, Resources};
use serde::{Deserialize, Serialize};

/// Largest task file accepted, in bytes.
pub const TASK_FILE_BYTES_MAX: usize = 64 * 1024;
pub const NAME_BYTES_MAX: usize = 64;
pub const ARGS_MAX: usize = 64;
pub const PATHS_MAX: usize = 64;
/// Most inputs a task names by CID (`inputs_by_cid`, `TaskTerms::input_cids`).
pub const INPUT_CIDS_MAX: usize = 16;
/// Longest time limit: 7 days.
pub const TIME_LIMIT_SECS_MAX: u64 = 7 * 24 * 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkAccess {
    #[default]
    None,
    Full,
}

fn default_true() -> bool {
    true
}

/// A decimal written as a YAML string or number (`"0.001"`, `0.001`, `2`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DecimalForm", into = "String")]
pub struct Decimal(pub String);

#[derive(Deserialize)]
#[serde(untagged)]
enum DecimalForm {
    Text(String),
    Whole(u64),
    Number(f64),
}

impl TryFrom<DecimalForm> for Decimal {
    type Error = String;
    fn try_from(form: DecimalForm) -> Result<Self, String> {
        Ok(Decimal(match form {
            DecimalForm::Text(text) => text,
            DecimalForm::Whole(n) => n.to_string(),
            // The shortest text that reads back as the same number: `0.001` stays `0.001`.
            DecimalForm::Number(x) => x.to_string(),
        }))
    }
}

impl From<Decimal> for String {
    fn from(d: Decimal) -> String {
        d.0
    }
}

impl Decimal {
    /// The value in micro-units: digits, optionally a point and at most six more digits.
    pub fn micros(&self) -> Option<u64> {
        let (whole, fraction) = self.0.split_once('.').unwrap_or((&self.0, ""));
        let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
            return None;
        }
        let scale = 10u64.pow(6 - u32::try_from(fraction.len()).ok()?);
        let fraction: u64 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
        whole.parse::<u64>().ok()?.checked_mul(MICROS_PER_UNIT)?.checked_add(fraction * scale)
    }
}

/// `nondeterministic:` in a task file: the task's honest results differ by machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NondeterministicFile {
    /// One of the task's outputs (or a file under one): a JSON array of 1 to 8 numbers.
    pub summary: String,
    /// Largest difference allowed per number, at most six decimals.
    pub tolerance: Decimal,
    #[serde(default)]
    pub mode: CompareMode,
}

/// An entry of `inputs_by_cid:` in a task file: content in the store (a dataset, a model, an
/// image), placed in `/task/in` under `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputByCid {
    pub cid: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub kind: TaskKind,
    #[serde(default)]
    pub runtime: Runtime,
    /// Container image, named by digest (`name@sha256:<hex>` or `sha256:<hex>`, see
    /// [`image_digest`]); only for `runtime: container`.
    #[serde(default)]
    pub image: Option<String>,
    /// One of `inputs`: a `docker save` archive holding `image`, for providers whose engine
    /// does not have it and cannot pull it.
    #[serde(default)]
    pub image_archive: Option<String>,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Content already in the store, named by CID: added once, read by any number of tasks.
    #[serde(default)]
    pub inputs_by_cid: Vec<InputByCid>,
    #[serde(default)]
    pub outputs: Vec<String>,
    #[serde(default)]
    pub resources: Resources,
    pub time_limit_secs: u64,
    pub budget: Amount,
    pub max_price_per_hour: Amount,
    #[serde(default)]
    pub verification: Verification,
    #[serde(default)]
    pub strategy: MatchStrategy,
    #[serde(default)]
    pub reputation_min: u16,
    #[serde(default = "default_true")]
    pub encrypt: bool,
    #[serde(default)]
    pub network: NetworkAccess,
    /// Absent: the task's outputs are identical on every machine, compared bit for bit.
    #[serde(default)]
    pub nondeterministic: Option<NondeterministicFile>,
}

/// A task file error that names the line (when known) and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task file line {line}: field `{field}`: {message}")]
pub struct SpecError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl TaskFile {
    pub fn parse(text: &str) -> Result<TaskFile, SpecError> {
        if text.len() > TASK_FILE_BYTES_MAX {
            return Err(SpecError {
                line: 1,
                field: "(file)".into(),
                message: format!(
                    "file is {} bytes, the limit is {TASK_FILE_BYTES_MAX}",
                    text.len()
                ),
            });
        }
        let file: TaskFile = serde_yaml_ng::from_str(text).map_err(|e| {
            let message = e.to_string();
            let field = field_named_in(&message).unwrap_or_else(|| "(document)".into());
            let line = e.location().map(|l| l.line()).unwrap_or_else(|| line_of(text, &field));
            SpecError { line, field, message }
        })?;
        file.validate().map_err(|(field, message)| SpecError {
            line: line_of(text, field),
            field: field.into(),
            message,
        })?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let fail = |field, message: &str| Err((field, message.to_string()));
        if self.version != 1 {
            return fail("version", "only version 1 is supported");
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.name.is_empty()
            || self.name.len() > NAME_BYTES_MAX
            || !self.name.chars().all(name_ok)
        {
            return fail("name", "1 to 64 characters of letters, digits, '-', '_' or '.'");
        }
        if self.command.trim().is_empty() {
            return fail("command", "must not be empty");
        }
        if self.args.len() > ARGS_MAX {
            return fail("args", "at most 64 arguments");
        }
        if self.inputs.len() > PATHS_MAX || self.outputs.len() > PATHS_MAX {
            return fail("inputs", "at most 64 inputs and 64 outputs");
        }
        if self.inputs_by_cid.len() > INPUT_CIDS_MAX {
            return fail("inputs_by_cid", "at most 16 inputs by CID");
        }
        let names: std::collections::BTreeSet<&str> =
            self.inputs_by_cid.iter().map(|input| input.name.as_str()).collect();
        let plain_name =
            |name: &str| is_relative_plain_path(name) && !name.contains('/') && name.len() <= 255;
        if names.len() < self.inputs_by_cid.len() || !names.iter().all(|name| plain_name(name)) {
            return fail("inputs_by_cid", "each name is one path component, used once");
        }
        if let Some(bad) = self.outputs.iter().find(|o| !is_relative_plain_path(o)) {
            return Err(("outputs", format!("`{bad}` must be a relative path without `..`")));
        }
        if self.time_limit_secs == 0 || self.time_limit_secs > TIME_LIMIT_SECS_MAX {
            return fail("time_limit_secs", "must be between 1 and 604800 (7 days)");
        }
        if self.budget.is_zero() {
            return fail("budget", "must be positive");
        }
        if self.max_price_per_hour.is_zero() {
            return fail("max_price_per_hour", "must be positive");
        }
        if let Verification::Replicas(k) = self.verification {
            if !(2..=REPLICAS_MAX).contains(&k) {
                return fail("verification", "replicas must be between 2 and 7");
            }
        }
        if let Some(file) = &self.nondeterministic {
            let declared =
                |o: &String| file.summary == *o || file.summary.starts_with(&format!("{o}/"));
            if !is_relative_plain_path(&file.summary)
                || file.summary.len() > SUMMARY_PATH_BYTES_MAX
                || !self.outputs.iter().any(declared)
            {
                return fail("nondeterministic", "the summary must be one of the task's outputs");
            }
            if !file.tolerance.micros().is_some_and(|t| (1..=SUMMARY_MICROS_MAX).contains(&t)) {
                return fail(
                    "nondeterministic",
                    "the tolerance is a positive decimal of at most 10^12 with at most six decimals",
                );
            }
        }
        match (self.runtime, &self.image) {
            (Runtime::Container, None) => return fail("image", "a container task needs an image"),
            (Runtime::Sandbox, Some(_)) => {
                return fail("image", "only container tasks take an image")
            }
            (_, Some(image)) if image_digest(image).is_none() => {
                return fail(
                    "image",
                    "name the image by digest, `name@sha256:<64 hex>` or `sha256:<64 hex>`; a tag \
                     alone names whatever the registry serves today",
                )
            }
            _ => {}
        }
        if self.runtime == Runtime::Container && self.network == NetworkAccess::Full {
            return fail("network", "container tasks run without network access");
        }
        match &self.image_archive {
            Some(archive) if !self.inputs.contains(archive) || self.image.is_none() => fail(
                "image_archive",
                "the image archive is one of the inputs of a task that names an image",
            ),
            _ => Ok(()),
        }
    }
}

impl TaskFile {
    /// What the provider runs and returns: the manifest of the task's input bundle.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            command: self.command.clone(),
            args: self.args.clone(),
            outputs: self.outputs.clone(),
            image: self.image.clone(),
            // The archive is packed under its file name, as every input is.
            image_archive: self.image_archive.as_ref().and_then(|archive| {
                std::path::Path::new(archive)
                    .file_name()
                    .and_then(|name| name.to_str())
                    .map(str::to_string)
            }),
            references: Vec::new(),
        }
    }

    /// The terms a requester signs for this file: its inputs sealed and stored at `inputs_cid`,
    /// its results sealed to `result_key` (every client builds them here, the CLI and the web
    /// page through `POST /v1/task-files`).
    pub fn terms(&self, inputs_cid: String, result_key: [u8; 32]) -> TaskTerms {
        TaskTerms {
            name: self.name.clone(),
            kind: self.kind,
            runtime: self.runtime,
            resources: self.resources.clone(),
            time_limit_secs: self.time_limit_secs,
            budget: self.budget,
            max_price_per_hour: self.max_price_per_hour,
            verification: self.verification,
            strategy: self.strategy,
            reputation_min: self.reputation_min,
            network: self.network == NetworkAccess::Full,
            encrypted: self.encrypt,
            inputs_cid,
            input_cids: self.inputs_by_cid.iter().map(|input| input.cid.clone()).collect(),
            result_key,
            nondeterministic: self.nondeterminism(),
        }
    }

    /// The task's terms' `nondeterministic` rule, from a validated file.
    pub fn nondeterminism(&self) -> Option<Nondeterminism> {
        let file = self.nondeterministic.as_ref()?;
        Some(Nondeterminism {
            summary: file.summary.clone(),
            tolerance_micros: file.tolerance.micros()?,
            mode: file.mode,
        })
    }
}

/// The digest a container image reference names: `sha256:<64 lowercase hex>`, alone or after
/// `name@` (a repository name of letters, digits and `._-/:`). A tag alone
/// (`pytorch/pytorch:latest`) names whatever the registry serves today: `None`.
pub fn image_digest(reference: &str) -> Option<&str> {
    let (name, digest) = reference.rsplit_once('@').unwrap_or(("", reference));
    let hex = digest.strip_prefix("sha256:")?;
    let hex_ok = hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    let name_ok = !reference.contains('@')
        || (!name.is_empty()
            && name.len() <= 255
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c)));
    (hex_ok && name_ok).then_some(digest)
}

/// A path inside a task's directories: relative, no `..`, no empty parts.
pub fn is_relative_plain_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

fn field_named_in(message: &str) -> Option<String> {
    let path_prefix = message.split_once(": ").map(|(head, _)| head);
    if let Some(path) =
        path_prefix.filter(|p| p.chars().all(|c| c.is_alphanumeric() || "_.".contains(c)))
    {
        return path.split('.').next().map(str::to_string);
    }
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

fn line_of(text: &str, field: &str) -> usize {
    text.lines()
        .position(|line| line.trim_start().starts_with(&format!("{field}:")))
        .map_or(1, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version: 1\nname: t\ncommand: python3\nargs: [a.py]\ntime_limit_secs: 10\nbudget: \"100\"\nmax_price_per_hour: \"36000\"\n";

    #[test]
    fn a_minimal_file_parses_with_private_defaults() {
        let file = TaskFile::parse(GOOD).expect("valid");
        assert!(file.encrypt);
        assert_eq!(file.network, NetworkAccess::None);
        assert_eq!(file.verification, Verification::Spot);
    }

    #[test]
    fn container_images_are_named_by_digest_and_shipped_only_as_inputs() {
        let hex = "ab".repeat(32);
        let container = |extra: &str| format!("{GOOD}runtime: container\n{extra}");
        for image in [format!("sha256:{hex}"), format!("pytorch/pytorch@sha256:{hex}")] {
            let file = TaskFile::parse(&container(&format!("image: \"{image}\"\n")));
            assert_eq!(file.expect("by digest").image, Some(image));
        }
        for image in [
            "pytorch/pytorch:latest".to_string(),
            "pytorch/pytorch".to_string(),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:{}", hex.to_uppercase()),
            format!("@sha256:{hex}"),
            format!("bad name@sha256:{hex}"),
        ] {
            let err = TaskFile::parse(&container(&format!("image: \"{image}\"\n")));
            assert_eq!(err.expect_err(&image).field, "image");
        }
        assert_eq!(TaskFile::parse(&container("")).expect_err("no image").field, "image");
        let image = format!("image: \"sha256:{hex}\"\n");
        let shipped = format!("{image}inputs: [img.tar]\nimage_archive: img.tar\n");
        assert!(TaskFile::parse(&container(&shipped)).is_ok());
        let elsewhere = format!("{image}image_archive: /etc/passwd\n");
        assert_eq!(TaskFile::parse(&container(&elsewhere)).expect_err("x").field, "image_archive");
        let networked = format!("{image}network: full\n");
        assert_eq!(TaskFile::parse(&container(&networked)).expect_err("net").field, "network");
        let sandboxed = format!("{GOOD}image: \"sha256:{hex}\"\n");
        assert_eq!(TaskFile::parse(&sandboxed).expect_err("sandbox").field, "image");
    }

    #[test]
    fn every_example_task_file_is_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("examples/tasks") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("readable");
                TaskFile::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
        assert!(checked >= 5, "{checked} example task files");
    }

    #[test]
    fn unknown_keys_name_their_line_and_field() {
        let err = TaskFile::parse(&format!("{GOOD}gpus: 3\n")).expect_err("unknown key");
        assert_eq!(err.line, 8);
        assert!(err.message.contains("gpus"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line_and_field() {
        let text = GOOD.replace("time_limit_secs: 10", "time_limit_secs: 0");
        let err = TaskFile::parse(&text).expect_err("zero limit");
        assert_eq!((err.line, err.field.as_str()), (5, "time_limit_secs"));
        let text = format!("{GOOD}verification: {{replicas: 9}}\n");
        assert_eq!(TaskFile::parse(&text).expect_err("k").field, "verification");
        let text = format!("{GOOD}outputs: [\"../etc/passwd\"]\n");
        assert_eq!(TaskFile::parse(&text).expect_err("path").field, "outputs");
    }

    #[test]
    fn replicas_and_full_network_parse() {
        let text = format!("{GOOD}verification: {{replicas: 3}}\nnetwork: full\n");
        let file = TaskFile::parse(&text).expect("valid");
        assert_eq!(file.verification, Verification::Replicas(3));
        assert_eq!(file.network, NetworkAccess::Full);
    }

    #[test]
    fn a_nondeterministic_task_names_an_output_summary_and_a_decimal_tolerance() {
        let text = format!(
            "{GOOD}outputs: [model.json, metrics.json]\nverification: {{replicas: 3}}\n\
             nondeterministic: {{summary: metrics.json, tolerance: 0.001, mode: committee}}\n"
        );
        let rule = TaskFile::parse(&text).expect("valid").nondeterminism().expect("declared");
        assert_eq!(rule.summary, "metrics.json");
        assert_eq!(rule.tolerance_micros, 1_000);
        assert_eq!(rule.mode, CompareMode::Committee);
        let quoted = text.replace("tolerance: 0.001, mode: committee", "tolerance: \"2.5\"");
        let rule = TaskFile::parse(&quoted).expect("valid").nondeterminism().expect("declared");
        assert_eq!((rule.tolerance_micros, rule.mode), (2_500_000, CompareMode::Tolerance));
        assert_eq!(TaskFile::parse(GOOD).expect("valid").nondeterminism(), None);

        for bad in [
            "summary: loss.json, tolerance: 0.001",
            "summary: metrics.json, tolerance: 0",
            "summary: metrics.json, tolerance: 0.0000001",
            "summary: metrics.json, tolerance: \"-1\"",
            "summary: metrics.json, tolerance: 1e30",
            "summary: ../metrics.json, tolerance: 1",
        ] {
            let text =
                text.replace("summary: metrics.json, tolerance: 0.001, mode: committee", bad);
            let err = TaskFile::parse(&text).expect_err(bad);
            assert_eq!((err.field.as_str(), err.line), ("nondeterministic", 10), "{bad}: {err}");
        }
        let unknown = text.replace("mode: committee", "mode: vote");
        assert!(TaskFile::parse(&unknown).is_err());
    }

    #[test]
    fn malformed_yaml_and_oversize_files_are_errors() {
        assert!(TaskFile::parse("version: [1\n").is_err());
        let big = "#".repeat(TASK_FILE_BYTES_MAX + 1);
        assert_eq!(TaskFile::parse(&big).expect_err("big").field, "(file)");
    }

    #[test]
    fn inputs_by_cid_name_one_file_each_once() {
        let text = format!(
            "{GOOD}inputs_by_cid:\n  - {{cid: bafkreiabc, name: data.bin}}\n  - {{cid: bafkreidef, name: model}}\n"
        );
        let file = TaskFile::parse(&text).expect("valid");
        assert_eq!(
            file.inputs_by_cid[1],
            InputByCid { cid: "bafkreidef".into(), name: "model".into() }
        );
        for bad in ["name: data.bin", "name: a/b", "name: ..", "name: \"\""] {
            let text = text.replace("name: model", bad);
            let err = TaskFile::parse(&text).expect_err(bad);
            assert_eq!(err.field, "inputs_by_cid", "{bad}: {err}");
        }
        let many: String =
            (0..17).map(|i| format!("  - {{cid: bafkreiabc, name: f{i}}}\n")).collect();
        let err = TaskFile::parse(&format!("{GOOD}inputs_by_cid:\n{many}")).expect_err("17");
        assert_eq!(err.field, "inputs_by_cid");
        assert!(TaskFile::parse(&text.replace("name: model", "name: m, key: x")).is_err());
    }
}
