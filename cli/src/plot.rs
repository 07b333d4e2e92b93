//! The front as a picture: accuracy against latency, parameters as colour, reference networks
//! as labelled triangles. Drawn once, as SVG; a PNG is that SVG rasterised, so both formats
//! always show the same thing.
//!
//! Marker shapes are part of the contract the tests check: one `<circle>` per front member,
//! one `<polygon>` per plotted reference, and neither anywhere else.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

use crate::api::Front;
use crate::error::{Error, Result};

/// What the picture says about where the front comes from.
#[derive(Debug, Clone, Default)]
pub struct PlotInfo {
    pub title: String,
    /// Second line: space, tables, accuracy source.
    pub subtitle: String,
    /// Axis label of the latency, e.g. `latency (ms, median on pixel-7/wgpu-fused)`.
    pub latency_label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Svg,
    Png,
}

impl ImageFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(Self::Svg),
            Some("png") => Ok(Self::Png),
            _ => Err(Error::Input(format!(
                "{}: the plot's file name must end in .svg or .png",
                path.display()
            ))),
        }
    }
}

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot(e.to_string())
}

/// Pads a data range so markers at the ends are not cut, and widens an empty one.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    if !span.is_finite() || span <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = (lo.abs() * 0.05).max(0.5);
        return (lo - pad, hi + pad);
    }
    (lo - span * 0.08, hi + span * 0.08)
}

/// The SVG document of the front.
pub fn svg(front: &Front, info: &PlotInfo, size: (u32, u32)) -> Result<String> {
    let (w, h) = (size.0.max(320), size.1.max(240));
    let refs: Vec<(&str, f64, f64)> = front
        .references
        .iter()
        .filter_map(|r| Some((r.name.as_str(), r.latency_ms?, r.accuracy?)))
        .filter(|(_, x, y)| x.is_finite() && y.is_finite())
        .collect();
    let unplotted: Vec<&str> = front
        .references
        .iter()
        .filter(|r| !refs.iter().any(|(n, _, _)| *n == r.name))
        .map(|r| r.name.as_str())
        .collect();
    let xs = front
        .front
        .iter()
        .map(|m| m.latency_ms)
        .chain(refs.iter().map(|r| r.1));
    let ys = front
        .front
        .iter()
        .map(|m| m.accuracy)
        .chain(refs.iter().map(|r| r.2));
    let (x0, x1) = padded(
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
    );
    let (y0, y1) = padded(
        ys.clone().fold(f64::INFINITY, f64::min),
        ys.fold(f64::NEG_INFINITY, f64::max),
    );
    let (x0, x1, y0, y1) = if x0.is_finite() && y0.is_finite() {
        (x0.max(0.0), x1, y0, y1)
    } else {
        (0.0, 1.0, 0.0, 1.0)
    };
    let p0 = front.front.iter().map(|m| m.params).min().unwrap_or(0) as f64;
    let p1 = front.front.iter().map(|m| m.params).max().unwrap_or(0) as f64;
    let shade = |params: u64| -> RGBColor {
        let t = if p1 > p0 {
            (params as f64 - p0) / (p1 - p0)
        } else {
            0.5
        };
        ViridisRGB::get_color(t.clamp(0.0, 1.0) as f32)
    };

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (top, body) = root.split_vertically(58);
        top.draw(&Text::new(
            info.title.clone(),
            (16, 10),
            ("sans-serif", 24).into_font().color(&BLACK),
        ))
        .map_err(plot_err)?;
        top.draw(&Text::new(
            info.subtitle.clone(),
            (16, 36),
            ("sans-serif", 16).into_font().color(&RGBColor(80, 80, 80)),
        ))
        .map_err(plot_err)?;
        let bar_w = 160.min(w / 4);
        let (plot_area, bar_area) = body.split_horizontally(w - bar_w);

        let mut chart = ChartBuilder::on(&plot_area)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(58)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(info.latency_label.clone())
            .y_desc(format!(
                "top-1 accuracy (%{})",
                if front.accuracy_kind == "proxy" {
                    ", proxy"
                } else {
                    ""
                }
            ))
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .bold_line_style(RGBColor(225, 225, 225))
            .light_line_style(RGBColor(246, 246, 246))
            .draw()
            .map_err(plot_err)?;

        // The front's staircase: what is attainable at each latency.
        let mut members: Vec<_> = front.front.iter().collect();
        members.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
        let mut steps = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if i > 0 {
                steps.push((m.latency_ms, members[i - 1].accuracy));
            }
            steps.push((m.latency_ms, m.accuracy));
        }
        if steps.len() > 1 {
            chart
                .draw_series(LineSeries::new(
                    steps,
                    RGBColor(150, 150, 150).stroke_width(1),
                ))
                .map_err(plot_err)?;
        }
        chart
            .draw_series(
                members
                    .iter()
                    .map(|m| Circle::new((m.latency_ms, m.accuracy), 5, shade(m.params).filled())),
            )
            .map_err(plot_err)?;
        // Each reference: a triangle with its name beside it, drawn as one element so the
        // label keeps its offset at any scale.
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(refs.iter().map(|(name, x, y)| {
                EmptyElement::at((*x, *y))
                    + TriangleMarker::new((0, 0), 8, red.filled())
                    + Text::new(
                        (*name).to_string(),
                        (10, -18),
                        ("sans-serif", 15).into_font().color(&red),
                    )
            }))
            .map_err(plot_err)?;

        // Legend and colour scale, beside the plot.
        let text = |s: String, at: (i32, i32)| {
            Text::new(s, at, ("sans-serif", 15).into_font().color(&BLACK))
        };
        bar_area
            .draw(&text("params (M)".into(), (4, 14)))
            .map_err(plot_err)?;
        let (bx, by, bh) = (8i32, 34i32, (h as i32 - 58 - 140).max(40));
        let steps_n = 48;
        for i in 0..steps_n {
            let t = 1.0 - i as f64 / (steps_n - 1) as f64;
            let y = by + bh * i / steps_n;
            let y2 = by + bh * (i + 1) / steps_n;
            bar_area
                .draw(&Rectangle::new(
                    [(bx, y), (bx + 16, y2 + 1)],
                    ViridisRGB::get_color(t as f32).filled(),
                ))
                .map_err(plot_err)?;
        }
        for (v, y) in [(p1, by), ((p0 + p1) / 2.0, by + bh / 2), (p0, by + bh)] {
            bar_area
                .draw(&text(format!("{:.2}", v / 1e6), (bx + 22, y - 6)))
                .map_err(plot_err)?;
        }
        let ly = by + bh + 22;
        bar_area
            .draw(&text("● front".into(), (4, ly)))
            .map_err(plot_err)?;
        bar_area
            .draw(&Text::new(
                "▲ reference".to_string(),
                (4, ly + 18),
                ("sans-serif", 15).into_font().color(&red),
            ))
            .map_err(plot_err)?;
        if !unplotted.is_empty() {
            bar_area
                .draw(&text("not plotted:".into(), (4, ly + 44)))
                .map_err(plot_err)?;
            for (i, n) in unplotted.iter().enumerate() {
                bar_area
                    .draw(&text((*n).to_string(), (4, ly + 60 + 16 * i as i32)))
                    .map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}

/// Rasterises an SVG with the system's fonts; without any installed font the labels are left
/// out but the picture is still drawn.
pub fn png(svg: &str) -> Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    {
        let db = opt.fontdb_mut();
        db.load_system_fonts();
        // plotters asks for the generic `sans-serif`, which fontdb maps to Arial unless told
        // otherwise; point it at a sans face this machine has.
        let families: Vec<String> = db
            .faces()
            .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
            .collect();
        if let Some(f) = [
            "DejaVu Sans",
            "Liberation Sans",
            "Noto Sans",
            "Arial",
            "Helvetica",
        ]
        .iter()
        .find(|want| families.iter().any(|have| have == *want))
        {
            db.set_sans_serif_family(*f);
        }
    }
    let tree = usvg::Tree::from_str(svg, &opt).map_err(plot_err)?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| Error::Plot(format!("no room for a {size:?} image")))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(plot_err)
}

/// Draws the front into `path`, in the format its extension names.
pub fn write(front: &Front, info: &PlotInfo, size: (u32, u32), path: &Path) -> Result<()> {
    let format = ImageFormat::from_path(path)?;
    let svg = svg(front, info, size)?;
    let bytes = match format {
        ImageFormat::Svg => svg.into_bytes(),
        ImageFormat::Png => png(&svg)?,
    };
    std::fs::write(path, bytes).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn front(members: usize) -> Front {
        let front: Vec<_> = (0..members)
            .map(|i| {
                json!({"arch": format!("{i:014x}"), "accuracy": 70.0 + i as f64,
                       "latency_ms": 5.0 + 2.0 * i as f64, "params": 3_000_000 + 400_000 * i as u64,
                       "macs": 1})
            })
            .collect();
        serde_json::from_value(json!({
            "id": "s", "state": "done", "generation": 3, "accuracy_kind": "proxy",
            "front": front,
            "references": [
                {"name": "MoGA-A", "arch": "453969358533aa", "accuracy": 75.9, "latency_ms": 11.0, "params": 5_100_000, "macs": 1},
                {"name": "MobileNetV3-Large", "arch": "MobileNetV3-Large", "accuracy": null, "latency_ms": 9.0, "params": 5_400_000, "macs": 1}
            ]
        }))
        .unwrap()
    }

    fn info() -> PlotInfo {
        PlotInfo {
            title: "Pareto front".into(),
            subtitle: "moga-mbv3".into(),
            latency_label: "latency (ms)".into(),
        }
    }

    #[test]
    fn one_marker_per_member_and_plotted_reference() {
        let s = svg(&front(6), &info(), (800, 600)).unwrap();
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        assert_eq!(s.matches("<circle").count(), 6);
        assert_eq!(s.matches("<polygon").count(), 1);
        assert!(s.contains("\nMoGA-A\n</text>"));
        // Without accuracy it cannot be placed, and the legend says so.
        assert!(s.contains("\nMobileNetV3-Large\n</text>"));
        assert!(s.contains("latency (ms)"));
    }

    #[test]
    fn degenerate_fronts_still_draw() {
        for n in [0, 1] {
            let s = svg(&front(n), &info(), (400, 300)).unwrap();
            assert_eq!(s.matches("<circle").count(), n);
        }
    }

    #[test]
    fn png_is_the_same_picture_rasterised() {
        let s = svg(&front(4), &info(), (960, 640)).unwrap();
        let png = png(&s).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after the signature and chunk header.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 960);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 640);
    }

    #[test]
    fn the_extension_picks_the_format() {
        assert_eq!(
            ImageFormat::from_path(Path::new("a.SVG")).unwrap(),
            ImageFormat::Svg
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("a.png")).unwrap(),
            ImageFormat::Png
        );
        assert!(ImageFormat::from_path(Path::new("a.jpg")).is_err());
        assert!(ImageFormat::from_path(Path::new("a")).is_err());
    }
}
