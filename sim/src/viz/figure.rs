//! The chart model and its rendering with plotters (SVG file, SVG string, PNG).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::Format;
use std::sync::Once;

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

/// A line of a chart.
#[derive(Clone, Debug, Default)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Thin and grey (reference data).
    pub reference: bool,
    /// Drawn with markers (values tried by a search) rather than joined only.
    pub markers: bool,
}

/// A filled band (a 95 % confidence interval): x, low, high.
#[derive(Clone, Debug, Default)]
pub struct Band {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// One panel of a stack.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub bands: Vec<Band>,
    /// Horizontal lines: a limit or a threshold (label, y).
    pub hlines: Vec<(String, f64)>,
}

impl Chart {
    fn y_range(&self) -> (f64, f64) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        let ys = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().map(|p| p.1)))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().map(|p| p.2)))
            .chain(self.hlines.iter().map(|h| h.1));
        for y in ys.filter(|y| y.is_finite()) {
            lo = lo.min(y);
            hi = hi.max(y);
        }
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        let lo = lo.min(0.0);
        let hi = if hi <= lo { lo + 1.0 } else { hi };
        (lo, hi + (hi - lo) * 0.08)
    }
}

/// Panels stacked over a shared x axis.
#[derive(Clone, Debug, Default)]
pub struct Stack {
    pub title: String,
    pub x_label: String,
    pub charts: Vec<Chart>,
    /// Vertical lines on every panel (events; a capacity), labelled on the first.
    pub vlines: Vec<(f64, String)>,
    /// Shaded x intervals on every panel (blocking GC pauses).
    pub shades: Vec<(f64, f64)>,
    pub shade_label: String,
    /// Shaded x interval with a label (a crossing's confidence interval).
    pub x_interval: Option<(f64, f64, String)>,
    /// The x axis counts whole things (servers, threads): ticks only at whole numbers.
    pub x_whole: bool,
}

/// A heat map over two axes, with an optional pass/fail boundary.
#[derive(Clone, Debug, Default)]
pub struct Heat {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_ticks: Vec<String>,
    pub y_ticks: Vec<String>,
    /// `values[y][x]`.
    pub values: Vec<Vec<Option<f64>>>,
    /// The value's name (colour bar caption) and how a cell prints it.
    pub value_label: String,
    pub percent: bool,
    /// `pass[y][x]`: the SLO holds; a thick line separates passing from failing cells.
    pub pass: Option<Vec<Vec<Option<bool>>>>,
    pub boundary_label: String,
    /// A vertical (x) or horizontal (y) marker in cell coordinates (0 = first cell's
    /// centre), e.g. the capacity found by a search.
    pub x_marker: Option<(f64, String)>,
    pub y_marker: Option<(f64, String)>,
}

/// A picture.
#[derive(Clone, Debug)]
pub enum Figure {
    Stack(Stack),
    Heat(Heat),
}

impl Figure {
    pub fn size(&self) -> (u32, u32) {
        match self {
            Figure::Stack(s) => (1100, 70 + 230 * s.charts.len().max(1) as u32),
            Figure::Heat(_) => (1100, 700),
        }
    }

    /// Titles of the panels (tests and reports).
    pub fn panel_titles(&self) -> Vec<String> {
        match self {
            Figure::Stack(s) => s.charts.iter().map(|c| c.title.clone()).collect(),
            Figure::Heat(h) => vec![h.title.clone()],
        }
    }

    /// Renders to an SVG document in memory.
    pub fn to_svg_string(&self) -> Result<String, String> {
        ensure_font();
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, self.size()).into_drawing_area();
            self.draw(root)?;
        }
        Ok(s)
    }

    /// Renders to `path` as SVG or PNG.
    pub fn write(&self, path: &Path, format: Format) -> Result<(), String> {
        ensure_font();
        if let Some(d) = path.parent()
            && !d.as_os_str().is_empty()
        {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        match format {
            Format::Png => {
                // The bitmap backend opens the file only when it saves: find out first
                // whether it can be written, and say so in plain words.
                std::fs::File::create(path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                self.draw(BitMapBackend::new(path, self.size()).into_drawing_area())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            }
            Format::Svg => {
                let s = self.to_svg_string()?;
                crate::output::write_atomic(path, &s)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        match self {
            Figure::Stack(s) => draw_stack(root, s),
            Figure::Heat(h) => draw_heat(root, h),
        }
    }
}

pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

fn draw_stack<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, st: &Stack) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(&st.title, ("sans-serif", 22)).map_err(e)?;
    let n = st.charts.len().max(1);
    let areas = root.split_evenly((n, 1));
    let xs = st
        .charts
        .iter()
        .flat_map(|c| {
            c.lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.0))
                .chain(c.bands.iter().flat_map(|b| b.points.iter().map(|p| p.0)))
        })
        .chain(st.vlines.iter().map(|v| v.0))
        .filter(|x| x.is_finite());
    let (mut x_lo, mut x_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in xs {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
    }
    if !x_lo.is_finite() {
        (x_lo, x_hi) = (0.0, 1.0);
    }
    if x_hi <= x_lo {
        x_hi = x_lo + 1.0;
    }
    if x_lo > 0.0 && x_lo < 0.25 * x_hi {
        x_lo = 0.0;
    }
    let last = n - 1;
    for (k, (chart_m, area)) in st.charts.iter().zip(areas).enumerate() {
        let (y_lo, y_hi) = chart_m.y_range();
        let mut chart = ChartBuilder::on(&area)
            .caption(&chart_m.title, ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(if k == last { 36 } else { 22 })
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(e)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(&chart_m.y_label)
            .label_style(("sans-serif", 11))
            .light_line_style(RGBColor(235, 235, 235));
        if k == last {
            mesh.x_desc(&st.x_label);
        }
        let whole = |x: &f64| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        if st.x_whole {
            mesh.x_label_formatter(&whole);
        }
        mesh.draw().map_err(e)?;
        let grey = RGBColor(120, 120, 120);
        // Shaded intervals first, under the lines.
        for (i, &(a, b)) in st.shades.iter().enumerate() {
            let anno = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a, y_lo), (b, y_hi)],
                    RGBColor(255, 160, 0).mix(0.25).filled(),
                )))
                .map_err(e)?;
            if i == 0 && !st.shade_label.is_empty() {
                anno.label(st.shade_label.clone()).legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 5), (x + 18, y + 5)],
                        RGBColor(255, 160, 0).mix(0.4).filled(),
                    )
                });
            }
        }
        if let Some((a, b, label)) = &st.x_interval {
            let anno = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(*a, y_lo), (*b, y_hi)],
                    RGBColor(120, 120, 120).mix(0.15).filled(),
                )))
                .map_err(e)?;
            if k == 0 {
                anno.label(label.clone()).legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 5), (x + 18, y + 5)],
                        RGBColor(120, 120, 120).mix(0.3).filled(),
                    )
                });
            }
        }
        let mut colour = 0;
        for b in &chart_m.bands {
            let c = PALETTE[colour % PALETTE.len()];
            let mut poly: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.2)).collect();
            poly.extend(b.points.iter().rev().map(|p| (p.0, p.1)));
            let anno = chart
                .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.2).filled())))
                .map_err(e)?;
            if !b.label.is_empty() {
                anno.label(b.label.clone()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.mix(0.3).filled())
                });
            }
            colour += 1;
        }
        colour = 0;
        for l in &chart_m.lines {
            let style: ShapeStyle = if l.reference {
                RGBColor(150, 150, 150).stroke_width(2)
            } else {
                let c = PALETTE[colour % PALETTE.len()];
                colour += 1;
                c.stroke_width(2)
            };
            let pts: Vec<(f64, f64)> = l
                .points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            let anno = chart
                .draw_series(LineSeries::new(pts.iter().copied(), style))
                .map_err(e)?;
            if !l.label.is_empty() {
                anno.label(l.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
            if l.markers {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, style.color.filled())))
                    .map_err(e)?;
            }
        }
        for (label, y) in &chart_m.hlines {
            let style = BLACK.stroke_width(1);
            let dashed = DashedLineSeries::new(vec![(x_lo, *y), (x_hi, *y)], 6, 4, style);
            chart
                .draw_series(dashed)
                .map_err(e)?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        // Labels go on up to four rows under the top edge, each on the first row where it
        // does not run into the previous label; with more events, the rest are lines only.
        let mut rows_free_from = [f64::NEG_INFINITY; 4];
        for (x, label) in &st.vlines {
            let style = grey.stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(*x, y_lo), (*x, y_hi)],
                    4,
                    3,
                    style,
                ))
                .map_err(e)?;
            let row = rows_free_from.iter().position(|free| *x >= *free);
            if let (0, Some(row)) = (k, row) {
                // ~6.5 px per character of an 11 px font on a ~1000 px wide plot.
                let width = (x_hi - x_lo) * (label.chars().count() as f64 * 6.5) / 1000.0;
                rows_free_from[row] = x + width;
                let y = y_hi - (y_hi - y_lo) * 0.08 * row as f64;
                // A line near the right edge gets its label on its left, not cut off.
                let at = if x + width > x_hi { x - width } else { *x };
                chart
                    .draw_series(std::iter::once(Text::new(
                        label.clone(),
                        (at, y),
                        ("sans-serif", 11).into_font().color(&grey),
                    )))
                    .map_err(e)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font(("sans-serif", 11))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)
}

/// A viridis-like colour for t in [0, 1].
pub fn colour_map(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let f = t * (STOPS.len() - 1) as f64;
    let i = (f.floor() as usize).min(STOPS.len() - 2);
    let u = f - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let m = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

fn fmt_cell(v: f64, percent: bool) -> String {
    if percent {
        let p = v * 100.0;
        if p == 0.0 {
            "0".into()
        } else if p < 0.1 {
            format!("{p:.3}%")
        } else {
            format!("{p:.1}%")
        }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn draw_heat<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, h: &Heat) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(&h.title, ("sans-serif", 22)).map_err(e)?;
    let (main, bar) = root.split_horizontally(root.dim_in_pixel().0 - 120);
    let nx = h.x_ticks.len().max(1);
    let ny = h.y_ticks.len().max(1);
    // Cells are centred on integers: key points at whole numbers carry the tick labels.
    let mut chart = ChartBuilder::on(&main)
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)
        .map_err(e)?;
    let xt = h.x_ticks.clone();
    let yt = h.y_ticks.clone();
    let tick = |t: &[String], v: f64| -> String {
        let r = v.round();
        if (v - r).abs() > 1e-6 || r < 0.0 {
            return String::new();
        }
        t.get(r as usize).cloned().unwrap_or_default()
    };
    let xf = move |x: &f64| tick(&xt, *x);
    let yf = move |y: &f64| tick(&yt, *y);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(nx + 1)
        .y_labels(ny + 1)
        .x_desc(&h.x_label)
        .y_desc(&h.y_label)
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(e)?;
    let vals: Vec<f64> = h
        .values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let vmin = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let vmax = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (vmin, vmax) = if vals.is_empty() {
        (0.0, 1.0)
    } else if vmax > vmin {
        (vmin, vmax)
    } else {
        (vmin, vmin + 1.0)
    };
    let norm = |v: f64| (v - vmin) / (vmax - vmin);
    for (j, row) in h.values.iter().enumerate() {
        for (i, v) in row.iter().enumerate() {
            let (x0, y0) = (i as f64 - 0.5, j as f64 - 0.5);
            let fill = match v {
                Some(v) if v.is_finite() => colour_map(norm(*v)).filled(),
                _ => RGBColor(220, 220, 220).filled(),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                    fill,
                )))
                .map_err(e)?;
            if let Some(v) = v {
                let dark = norm(*v) < 0.6;
                let colour = if dark { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        fmt_cell(*v, h.percent),
                        (x0 + 0.5, y0 + 0.5),
                        ("sans-serif", 11).into_font().color(&colour).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Center,
                            ),
                        ),
                    )))
                    .map_err(e)?;
            }
        }
    }
    if let Some(pass) = &h.pass {
        let at = |j: usize, i: usize| pass.get(j).and_then(|r| r.get(i)).copied().flatten();
        let mut segs = Vec::new();
        for j in 0..ny {
            for i in 0..nx {
                let here = at(j, i);
                if i + 1 < nx
                    && let (Some(a), Some(b)) = (here, at(j, i + 1))
                    && a != b
                {
                    let x = i as f64 + 0.5;
                    segs.push(vec![(x, j as f64 - 0.5), (x, j as f64 + 0.5)]);
                }
                if j + 1 < ny
                    && let (Some(a), Some(b)) = (here, at(j + 1, i))
                    && a != b
                {
                    let y = j as f64 + 0.5;
                    segs.push(vec![(i as f64 - 0.5, y), (i as f64 + 0.5, y)]);
                }
            }
        }
        let style = RGBColor(230, 20, 20).stroke_width(4);
        let mut first = true;
        for s in segs {
            let anno = chart
                .draw_series(std::iter::once(PathElement::new(s, style)))
                .map_err(e)?;
            if first {
                anno.label(h.boundary_label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                first = false;
            }
        }
    }
    let mstyle = WHITE.stroke_width(3);
    if let Some((x, label)) = &h.x_marker {
        let x = *x;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x, -0.5), (x, ny as f64 - 0.5)],
                8,
                5,
                mstyle,
            ))
            .map_err(e)?
            .label(label.clone())
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 18, y)],
                    RGBColor(90, 90, 90).stroke_width(3),
                )
            });
    }
    if let Some((y, label)) = &h.y_marker {
        let y = *y;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(-0.5, y), (nx as f64 - 0.5, y)],
                8,
                5,
                mstyle,
            ))
            .map_err(e)?
            .label(label.clone())
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 18, y)],
                    RGBColor(90, 90, 90).stroke_width(3),
                )
            });
    }
    if h.pass.is_some() || h.x_marker.is_some() || h.y_marker.is_some() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
    }
    // Colour bar.
    let mut cb = ChartBuilder::on(&bar)
        .margin_top(10)
        .margin_bottom(60)
        .margin_right(10)
        .caption(&h.value_label, ("sans-serif", 12))
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, vmin..vmax)
        .map_err(e)?;
    let percent = h.percent;
    let yfmt = move |v: &f64| fmt_cell(*v, percent);
    cb.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_label_formatter(&yfmt)
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(e)?;
    let steps = 64;
    cb.draw_series((0..steps).map(|k| {
        let a = vmin + (vmax - vmin) * k as f64 / steps as f64;
        let b = vmin + (vmax - vmin) * (k + 1) as f64 / steps as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            colour_map(k as f64 / (steps - 1) as f64).filled(),
        )
    }))
    .map_err(e)?;
    root.present().map_err(e)
}
