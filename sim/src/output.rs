//! Outputs of a run: the time-series sink (`timeseries.csv`, streamed as the run goes,
//! so memory does not grow with simulated time) and the files of a run directory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::stats::Summary;

/// Receives time-series rows as the simulation produces them.
pub trait SampleSink {
    /// Called once before the first row.
    fn columns(&mut self, names: &[&str]) -> io::Result<()>;
    /// One row per sample interval, in column order.
    fn row(&mut self, values: &[f64]) -> io::Result<()>;
    /// Before a row: `limit` (a setting's name, as in `summary.json`'s `limits`) was
    /// reached in the interval that row ends, first at `at_s`.
    fn limit_reached(&mut self, _at_s: f64, _limit: &str) {}
    /// Called once after the last row.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Discards every row (benchmarks, sweeps that only need the summary).
#[derive(Debug, Default)]
pub struct NullSink;

impl SampleSink for NullSink {
    fn columns(&mut self, _: &[&str]) -> io::Result<()> {
        Ok(())
    }
    fn row(&mut self, _: &[f64]) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps rows in memory (tests; bounded by duration / sample interval).
#[derive(Debug, Default)]
pub struct MemorySink {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl MemorySink {
    /// The values of one column, by name.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[i]).collect())
    }
}

impl SampleSink for MemorySink {
    fn columns(&mut self, names: &[&str]) -> io::Result<()> {
        self.columns = names.iter().map(|s| s.to_string()).collect();
        Ok(())
    }
    fn row(&mut self, values: &[f64]) -> io::Result<()> {
        self.rows.push(values.to_vec());
        Ok(())
    }
}

/// Writes CSV rows to any writer. Numbers use Rust's shortest round-trip formatting,
/// so the same run gives byte-identical files.
pub struct CsvSink<W: Write> {
    out: csv::Writer<W>,
    buf: Vec<String>,
}

impl CsvSink<BufWriter<File>> {
    /// Creates `path` (truncating it).
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(BufWriter::new(File::create(path)?)))
    }
}

impl<W: Write> CsvSink<W> {
    pub fn new(w: W) -> Self {
        Self {
            out: csv::Writer::from_writer(w),
            buf: Vec::new(),
        }
    }
}

fn csv_err(e: csv::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl<W: Write> SampleSink for CsvSink<W> {
    fn columns(&mut self, names: &[&str]) -> io::Result<()> {
        self.out.write_record(names).map_err(csv_err)
    }
    fn row(&mut self, values: &[f64]) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend(values.iter().map(|v| format!("{v}")));
        self.out.write_record(&self.buf).map_err(csv_err)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes `text` to `path` atomically (temporary file + rename), so a reader never
/// sees a half-written file.
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("out")
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes `summary.json` into a run directory.
pub fn write_summary(dir: &Path, summary: &Summary) -> io::Result<()> {
    write_atomic(&dir.join("summary.json"), &summary.to_json(true))
}

/// Opens a run's `timeseries.csv` (or a server's, in a farm) and reads its header row: the
/// first column must be `time_s`, which tells a w3sim time series from any other CSV.
pub fn open_timeseries(path: &Path) -> Result<(csv::Reader<File>, Vec<String>), String> {
    let (r, headers) = open_csv(path)?;
    match headers.first() {
        Some(h) if h == "time_s" => Ok((r, headers)),
        first => Err(format!(
            "{}: not a w3sim time series: its first column is {}, expected `time_s`",
            path.display(),
            first.map_or("missing".to_string(), |h| format!("`{h}`"))
        )),
    }
}

/// Reads a time series, calling `row` with each row's numbers (an empty cell is `None`);
/// returns the columns. Refuses what w3sim never writes, naming the file and the line: a
/// file with no rows, a cell that is not a finite number, a `time_s` that does not
/// increase.
pub fn read_timeseries_rows(
    path: &Path,
    mut row: impl FnMut(&[Option<f64>]) -> Result<(), String>,
) -> Result<Vec<String>, String> {
    let (mut r, headers) = open_timeseries(path)?;
    let mut cells = Vec::with_capacity(headers.len());
    let mut last: Option<f64> = None;
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        timeseries_row(path, &headers, &rec, &mut cells)?;
        let line = rec.position().map_or(0, |p| p.line());
        if let Some(k) = cells.iter().position(|c| c.is_some_and(|v| !v.is_finite())) {
            return Err(format!(
                "{}:{line}: column {} (`{}`): not a finite number",
                path.display(),
                k + 1,
                headers.get(k).map_or("?", String::as_str)
            ));
        }
        let t = cells.first().copied().flatten();
        match (last, t) {
            (_, None) => {
                return Err(format!("{}:{line}: `time_s` is empty", path.display()));
            }
            (Some(prev), Some(t)) if t <= prev => {
                return Err(format!(
                    "{}:{line}: `time_s` {t} does not come after {prev}: the rows are out of order or repeated",
                    path.display()
                ));
            }
            _ => {}
        }
        last = t;
        row(&cells)?;
    }
    if last.is_none() {
        return Err(format!(
            "{}: no samples (a header and no rows): was the run stopped before its first sample?",
            path.display()
        ));
    }
    Ok(headers)
}

/// The numbers of one row of a time series (`line` is the row's line in the file): an
/// empty cell (a counter with nothing to report) is `None`; anything else that is not a
/// number is an error naming the file, the line and the column.
pub fn timeseries_row(
    path: &Path,
    headers: &[String],
    rec: &csv::StringRecord,
    out: &mut Vec<Option<f64>>,
) -> Result<(), String> {
    out.clear();
    let line = rec.position().map_or(0, |p| p.line());
    for (k, cell) in rec.iter().enumerate() {
        let cell = cell.trim();
        if cell.is_empty() {
            out.push(None);
            continue;
        }
        match cell.parse::<f64>() {
            Ok(v) => out.push(Some(v)),
            Err(_) => {
                return Err(format!(
                    "{}:{line}: column {} (`{}`): `{cell}` is not a number",
                    path.display(),
                    k + 1,
                    headers.get(k).map_or("?", String::as_str)
                ));
            }
        }
    }
    Ok(())
}

/// Opens a CSV output (`timeseries.csv`, `points.csv`) and reads its header row; errors
/// name the file.
pub fn open_csv(path: &Path) -> Result<(csv::Reader<File>, Vec<String>), String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = r
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    Ok((r, headers))
}

/// A run directory's name for a scenario or a farm's server: letters, digits, `-`, `_` and
/// `.` kept, anything else `_` (`out/<name>`, `out/<farm>/servers/<server>`).
pub fn dir_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "run".into() } else { s }
}
