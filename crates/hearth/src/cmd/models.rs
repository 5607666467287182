//! `hearth models`: what is installed, read from each model's own header.

use clap::Args;
use hearth_fetch::{format_parameters, human_bytes, Catalog, Home, Installed};
use serde::Serialize;

/// Arguments of `hearth models`.
#[derive(Args, Debug, Clone)]
pub struct ModelsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also list catalog models that are not installed.
    #[arg(long)]
    pub available: bool,
}

/// One row of the listing.
#[derive(Serialize, Debug)]
struct Row {
    name: String,
    installed: bool,
    path: Option<String>,
    architecture: Option<String>,
    parameters: Option<u64>,
    quantization: Option<String>,
    size: u64,
    sha256: String,
    /// "chat" (has a template, from the file or the catalog), "complete" (base model) or
    /// "embed" (an embedding model directory).
    mode: Option<String>,
    source: Option<String>,
    pulled_at: Option<String>,
    description: Option<String>,
    /// Why the header could not be read, when it could not.
    error: Option<String>,
}

fn installed_row(home: &Home, catalog: &Catalog, item: &Installed) -> Row {
    let path = item.full_path(home);
    let entry = catalog.get(&item.name);
    let mut row = Row {
        name: item.name.clone(),
        installed: true,
        path: Some(path.display().to_string()),
        architecture: None,
        parameters: None,
        quantization: None,
        size: item.size,
        sha256: item.sha256.clone(),
        mode: None,
        source: Some(item.source.clone()),
        pulled_at: Some(item.pulled_at.clone()),
        description: entry.map(|e| e.description.clone()),
        error: None,
    };
    if !path.exists() {
        row.installed = false;
        row.error = Some(format!("{} is missing; pull it again", path.display()));
        return row;
    }
    match hearth_fetch::inspect(&path) {
        Ok(info) => {
            let pinned = entry.is_some_and(|e| e.template.is_some());
            row.mode = Some(
                if path.is_dir() {
                    "embed"
                } else if info.chat_template || pinned {
                    "chat"
                } else {
                    "complete"
                }
                .to_string(),
            );
            row.architecture = Some(info.architecture);
            row.parameters = Some(info.parameters);
            row.quantization = Some(info.quantization);
        }
        Err(e) => row.error = Some(e.to_string()),
    }
    row
}

/// Runs `hearth models`.
pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let catalog = Catalog::load(&home)?;
    let installed = hearth_fetch::list_installed(&home)?;
    let mut rows: Vec<Row> = installed
        .iter()
        .map(|item| installed_row(&home, &catalog, item))
        .collect();
    if args.available {
        for entry in catalog.entries() {
            if installed.iter().any(|i| i.name == entry.name) {
                continue;
            }
            rows.push(Row {
                name: entry.name.clone(),
                installed: false,
                path: None,
                architecture: None,
                parameters: None,
                quantization: None,
                size: entry.size,
                sha256: entry.sha256.clone(),
                mode: None,
                source: Some(entry.source.describe()),
                pulled_at: None,
                description: Some(entry.description.clone()),
                error: None,
            });
        }
    }
    if args.json {
        let mut text = serde_json::to_string_pretty(&rows)?;
        text.push('\n');
        return write_stdout(&text);
    }
    if rows.is_empty() {
        eprintln!(
            "no models installed in {}; try `hearth pull {}`",
            home.models_dir().display(),
            catalog.default_model().name
        );
        return Ok(());
    }
    write_stdout(&table(&rows))?;
    for row in rows.iter().filter(|r| r.error.is_some()) {
        eprintln!("{}: {}", row.name, row.error.as_deref().unwrap_or_default());
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`hearth models | head`) is the reader's choice, not an error.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn table(rows: &[Row]) -> String {
    let dash = || "-".to_string();
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.architecture.clone().unwrap_or_else(dash),
                r.parameters.map_or_else(dash, format_parameters),
                r.quantization.clone().unwrap_or_else(dash),
                human_bytes(r.size),
                r.sha256.chars().take(12).collect(),
                match (&r.mode, r.installed) {
                    (Some(mode), _) => mode.clone(),
                    (None, true) => "?".into(),
                    (None, false) => "not installed".into(),
                },
            ]
        })
        .collect();
    let header = ["NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "SHA256", "USE"];
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut text = line(&header.map(String::from));
    for row in &cells {
        text.push_str(&line(row));
    }
    text
}
