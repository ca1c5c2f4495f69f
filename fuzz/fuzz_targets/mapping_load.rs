//! The mapping loader: any YAML text loads or is refused with diagnostics, never a panic.
#![no_main]

use std::env::VarError;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use s3actions::mapping::{Config, LoadError, render_diagnostics};

/// `${VAR}` references resolve to a fixed text, so runs do not depend on the environment.
fn env(name: &str) -> Result<String, VarError> {
    match name {
        "FUZZ" => Ok("value".to_string()),
        _ => Err(VarError::NotPresent),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Relative file names (PGP keys) resolve under a folder that does not exist.
    let path = Path::new("/nonexistent/s3actions-fuzz/mapping.yaml");
    match Config::from_str_with_env(text, path, &env) {
        Ok(config) => {
            for m in &config.mappings {
                let _ = (m.folder.constant(), m.folder.fixed_prefix());
                let _ = (m.filename.non_reproducible(), m.filename.uses_event());
                let _ = s3actions::encode::format_for(m).header().len();
            }
            let _ = render_diagnostics(path, &config.warnings);
        }
        Err(LoadError::Invalid { diagnostics, .. }) => {
            let _ = render_diagnostics(path, &diagnostics);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
