//! The gateway config a simulation runs: the scenario's own (inline or a
//! file it names) or `--config`, with every provider pointed at its
//! simulated twin, and `--policy` deciding for every route.

use std::path::{Path, PathBuf};

use switchyard_config::Config;

use crate::SimulateError;
use crate::scenario::{GatewaySource, Scenario};

/// The address a simulated provider answers at: `http://sim-N` (only the
/// simulation's dialer knows it).
pub(crate) fn simulated_url(index: usize) -> String {
    format!("http://sim-{index}")
}

/// A config ready to simulate, and the folder holding `--policy` (removed when dropped).
pub(crate) struct Prepared {
    pub config: Config,
    pub _policy_dir: Option<TempPolicyDir>,
}

/// A temporary policy folder holding one component.
pub(crate) struct TempPolicyDir(PathBuf);

impl Drop for TempPolicyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the config: `config_file` wins over the scenario's own.
pub(crate) fn prepare(
    scenario: &Scenario,
    config_file: Option<&Path>,
    policy: Option<&Path>,
) -> Result<Prepared, SimulateError> {
    let (mut table, origin, base_dir) = match (config_file, &scenario.gateway) {
        (Some(path), _) => read_table(path)?,
        (None, Some(GatewaySource::File(path))) => read_table(&scenario.base_dir.join(path))?,
        (None, Some(GatewaySource::Inline(table))) => {
            (table.clone(), "the scenario's [gateway]".to_owned(), scenario.base_dir.clone())
        }
        (None, None) => {
            return Err(SimulateError::Scenario(
                "the scenario has no gateway config: add a [gateway] table, gateway = \"FILE\", or pass --config"
                    .into(),
            ));
        }
    };
    point_providers_at_twins(&mut table, scenario)?;
    let text = toml::to_string(&table).map_err(|e| SimulateError::Scenario(format!("{origin}: {e}")))?;
    let mut config = switchyard_config::from_str(&text, &origin).map_err(|e| SimulateError::Config(e.to_string()))?;
    config.base_dir = base_dir;
    let policy_dir = match policy {
        Some(file) => Some(decide_with(&mut config, file)?),
        None => None,
    };
    Ok(Prepared { config, _policy_dir: policy_dir })
}

fn read_table(path: &Path) -> Result<(toml::Table, String, PathBuf), SimulateError> {
    let text = std::fs::read_to_string(path).map_err(|e| SimulateError::Config(format!("{}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| SimulateError::Config(format!("{}: {}", path.display(), e.to_string().trim())))?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    Ok((table, path.display().to_string(), dir))
}

fn point_providers_at_twins(table: &mut toml::Table, scenario: &Scenario) -> Result<(), SimulateError> {
    let Some(toml::Value::Array(providers)) = table.get_mut("providers") else {
        return Err(SimulateError::Config("the gateway config defines no [[providers]]".into()));
    };
    for provider in providers {
        let Some(entry) = provider.as_table_mut() else { continue };
        let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
        let Some(index) = scenario.providers.iter().position(|p| p.name == name) else {
            return Err(SimulateError::Scenario(format!(
                "the gateway config's provider {name:?} has no [[providers]] entry in the scenario saying how it behaves"
            )));
        };
        entry.insert("base_url".into(), toml::Value::String(simulated_url(index)));
        entry.insert("api".into(), toml::Value::String(scenario.providers[index].api.clone()));
        // The twin needs no TLS roots.
        entry.remove("ca_file");
    }
    Ok(())
}

/// Every route decided by the component `file` (its name: the file stem).
fn decide_with(config: &mut Config, file: &Path) -> Result<TempPolicyDir, SimulateError> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| file.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| SimulateError::Policy(format!("{}: a policy is a .wasm file", file.display())))?
        .to_owned();
    let dir = std::env::temp_dir().join(format!("switchyard-simulate-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| SimulateError::Policy(format!("{}: {e}", dir.display())))?;
    let held = TempPolicyDir(dir.clone());
    std::fs::copy(file, dir.join(format!("{name}.wasm")))
        .map_err(|e| SimulateError::Policy(format!("{}: {e}", file.display())))?;
    // Compiled once, beside the component, as the gateway's own folder does.
    let cache = file.parent().map(|p| p.join(".cache")).unwrap_or_else(|| PathBuf::from(".cache"));
    config.policy.cache_dir = Some(std::path::absolute(&cache).unwrap_or(cache));
    config.policy.dir = dir;
    config.policy.default = name.clone();
    for route in &mut config.routes {
        route.policy = Some(name.clone());
    }
    Ok(held)
}
