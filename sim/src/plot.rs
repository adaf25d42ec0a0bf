//! Pictures with plotters (SVG and PNG, no system libraries: the DejaVu font is
//! embedded and registered with plotters' ab_glyph text renderer).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

/// Registers the embedded DejaVu Sans font as "sans-serif" (once per process).
pub fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; a failure would only cost the labels.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and grey (reference data) rather than in colour.
    pub reference: bool,
}

/// A panel: title, y-axis label and its lines, sharing the x axis with the others.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    panels: &[Panel],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    let x_max = panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    for (panel, area) in panels.iter().zip(areas) {
        let y_max = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.08;
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(&panel.y_label)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        let mut colour = 0;
        for s in &panel.series {
            let style: ShapeStyle = if s.reference {
                RGBColor(150, 150, 150).stroke_width(1)
            } else {
                let c = PALETTE[colour % PALETTE.len()];
                colour += 1;
                c.stroke_width(2)
            };
            let anno = chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(|e| e.to_string())?;
            if !s.label.is_empty() {
                anno.label(s.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws stacked panels sharing the x axis into `path` (`.svg` or `.png`).
pub fn stacked(path: &Path, title: &str, x_label: &str, panels: &[Panel]) -> Result<(), String> {
    ensure_font();
    let h = 60 + 300 * panels.len().max(1) as u32;
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => draw(
            BitMapBackend::new(path, (1000, h)).into_drawing_area(),
            title,
            x_label,
            panels,
        ),
        _ => draw(
            SVGBackend::new(path, (1000, h)).into_drawing_area(),
            title,
            x_label,
            panels,
        ),
    }
}
