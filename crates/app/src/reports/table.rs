//! Any report as a table of typed cells, written out as CSV (UTF-8 with BOM), as a real
//! spreadsheet (XLSX: typed number and date cells, bold header row, frozen pane) or as
//! an SVG chart for channels that cannot run JavaScript.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

use super::query::{QueryResult, Ty};
use super::{Figure, Funnel, Pipeline, Report};
use crate::error::{AppError, AppResult};

/// One typed cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Num(Decimal),
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

impl Cell {
    fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    fn opt_num(d: Option<Decimal>) -> Cell {
        d.map_or(Cell::Empty, Cell::Num)
    }

    fn number(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Num(d) => d.to_f64(),
            _ => None,
        }
    }

    pub(crate) fn display(&self, tz: FixedOffset) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Num(d) => d.to_string(),
            Cell::Date(d) => d.to_string(),
            Cell::Time(t) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

/// What the chart of a table draws: one bar (or point) per row, labelled by one column
/// and measured by another (a second, lighter bar for the previous period).
#[derive(Debug, Clone)]
pub struct ChartSpec {
    pub line: bool,
    pub label_col: usize,
    pub value_col: usize,
    pub previous_col: Option<usize>,
}

/// A report as rows of typed cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub chart: Option<ChartSpec>,
    /// The rows the chart draws (all rows when none).
    pub chart_rows: Option<Vec<Vec<Cell>>>,
}

fn bilingual(zh: &str, en: &str) -> String {
    format!("{zh} {en}")
}

fn figure_row(group: &str, f: &Figure) -> Vec<Cell> {
    vec![
        Cell::text(group),
        Cell::text(bilingual(f.label_zh, f.label_en)),
        Cell::text(f.kpi),
        Cell::text(
            f.currency
                .clone()
                .or_else(|| f.activity_type.clone())
                .unwrap_or_default(),
        ),
        Cell::opt_num(f.value),
        Cell::opt_num(f.previous),
        Cell::opt_num(f.change),
        Cell::opt_num(f.change_pct),
    ]
}

/// A results or process report: one row per figure, totals first. The chart draws
/// `kpi` (default: the first figure) per group, or in total.
pub fn of_report(r: &Report, kpi: Option<&str>) -> AppResult<Table> {
    let headers = [
        ("分组", "Group"),
        ("指标", "Figure"),
        ("代码", "KPI"),
        ("币种/类型", "Currency / type"),
        ("本期", "Value"),
        ("上期", "Previous"),
        ("变化", "Change"),
        ("变化率%", "Change %"),
    ]
    .iter()
    .map(|(z, e)| bilingual(z, e))
    .collect();
    let mut rows: Vec<Vec<Cell>> = r.totals.iter().map(|f| figure_row("合计 Total", f)).collect();
    for row in &r.rows {
        let label = row.group.label.clone().unwrap_or_else(|| "(无 none)".into());
        rows.extend(row.figures.iter().map(|f| figure_row(&label, f)));
    }
    let wanted = match kpi {
        Some(k) => {
            if !r.totals.iter().any(|f| f.kpi == k) {
                return Err(AppError::field(
                    "kpi",
                    "unknown_kpi",
                    format!("`{k}` is not a figure of this report"),
                ));
            }
            k.to_owned()
        }
        None => r.totals.first().map(|f| f.kpi.to_owned()).unwrap_or_default(),
    };
    // The first currency (or the total over types) of the figure, per group.
    let split_of = |f: &Figure| f.currency.clone().or_else(|| f.activity_type.clone());
    let first_split = r.totals.iter().find(|f| f.kpi == wanted).and_then(split_of);
    let grouped = !r.rows.is_empty();
    let chart_rows: Vec<Vec<Cell>> = rows
        .iter()
        .filter(|row| {
            row[2] == Cell::text(wanted.as_str())
                && (row[0] == Cell::text("合计 Total")) != grouped
                && match &first_split {
                    Some(s) => row[3] == Cell::text(s.as_str()),
                    None => row[3] == Cell::text(""),
                }
        })
        .cloned()
        .collect();
    Ok(Table {
        title: format!("{} {}", r.report, wanted),
        headers,
        rows,
        chart: Some(ChartSpec {
            line: false,
            label_col: 0,
            value_col: 4,
            previous_col: Some(5),
        }),
        chart_rows: Some(chart_rows),
    })
}

/// The funnel: one row per group and stage, every figure a column (value, then the
/// previous period). The chart draws deals entered per stage (in total).
pub fn of_funnel(f: &Funnel) -> Table {
    let Some(first) = f.totals.first() else {
        return Table {
            title: "funnel".into(),
            headers: vec![],
            rows: vec![],
            chart: None,
            chart_rows: None,
        };
    };
    let mut headers = vec![bilingual("分组", "Group"), bilingual("阶段", "Stage")];
    for fig in &first.figures {
        headers.push(bilingual(fig.label_zh, fig.label_en));
        headers.push(format!("{} 上期 previous", fig.label_en));
    }
    let mut rows = Vec::new();
    let mut push = |group: &str, stages: &[super::FunnelStage]| {
        for s in stages {
            let mut row = vec![Cell::text(group), Cell::text(s.name.clone())];
            for fig in &s.figures {
                row.push(Cell::opt_num(fig.value));
                row.push(Cell::opt_num(fig.previous));
            }
            rows.push(row);
        }
    };
    push("合计 Total", &f.totals);
    for g in &f.groups {
        push(&g.group.label.clone().unwrap_or_else(|| "(无 none)".into()), &g.stages);
    }
    let totals: Vec<Vec<Cell>> = rows.iter().take(f.totals.len()).cloned().collect();
    Table {
        title: "funnel entered".into(),
        headers,
        rows,
        chart: Some(ChartSpec {
            line: false,
            label_col: 1,
            value_col: 2,
            previous_col: Some(3),
        }),
        chart_rows: Some(totals),
    }
}

/// The pipeline: one row per close month, stage, category and currency. The chart
/// draws the weighted amount per close month in the most used currency.
pub fn of_pipeline(p: &Pipeline) -> Table {
    let headers = [
        ("预计成交月", "Close month"),
        ("阶段", "Stage"),
        ("预测类别", "Forecast category"),
        ("币种", "Currency"),
        ("商机数", "Deals"),
        ("金额", "Amount"),
        ("加权金额", "Weighted amount"),
        ("历史赢率%", "Historical win %"),
        ("历史预测", "Forecast amount"),
    ]
    .iter()
    .map(|(z, e)| bilingual(z, e))
    .collect();
    let rows: Vec<Vec<Cell>> = p
        .cells
        .iter()
        .map(|c| {
            vec![
                Cell::text(c.month.clone().unwrap_or_default()),
                Cell::text(c.stage_name.clone()),
                Cell::text(c.forecast_category.clone()),
                Cell::text(c.currency.clone()),
                Cell::Int(c.deals),
                Cell::opt_num(c.amount),
                Cell::opt_num(c.weighted_amount),
                Cell::opt_num(c.historical_win_pct),
                Cell::opt_num(c.forecast_amount),
            ]
        })
        .collect();
    // The chart: weighted amount per month, in the currency with the most deals.
    let mut currencies: Vec<(&str, i64)> = Vec::new();
    for c in &p.cells {
        match currencies.iter_mut().find(|(k, _)| *k == c.currency) {
            Some((_, n)) => *n += c.deals,
            None => currencies.push((&c.currency, c.deals)),
        }
    }
    currencies.sort_by_key(|(_, n)| -n);
    let currency = currencies.first().map(|(c, _)| (*c).to_owned()).unwrap_or_default();
    let mut months: Vec<(String, Decimal)> = Vec::new();
    for c in p.cells.iter().filter(|c| c.currency == currency) {
        let m = c.month.clone().unwrap_or_else(|| "—".into());
        let v = c.weighted_amount.unwrap_or_default();
        match months.iter_mut().find(|(k, _)| *k == m) {
            Some((_, t)) => *t += v,
            None => months.push((m, v)),
        }
    }
    let chart_rows: Vec<Vec<Cell>> = months
        .into_iter()
        .map(|(m, v)| vec![Cell::Text(m), Cell::Num(v)])
        .collect();
    Table {
        title: format!("pipeline weighted {currency}"),
        headers,
        rows,
        chart: Some(ChartSpec {
            line: false,
            label_col: 0,
            value_col: 1,
            previous_col: None,
        }),
        chart_rows: Some(chart_rows),
    }
}

/// An ad-hoc query: its columns and rows as they came, typed by the column types.
pub fn of_query(q: &QueryResult) -> Table {
    let headers = q.columns.iter().map(|c| bilingual(&c.label_zh, &c.label_en)).collect();
    let rows = q
        .rows
        .iter()
        .map(|row| {
            q.columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let v = row.get(i).unwrap_or(&Value::Null);
                    match (c.ty, v) {
                        (_, Value::Null) => Cell::Empty,
                        (Ty::Integer, Value::Number(n)) => n.as_i64().map_or(Cell::Empty, Cell::Int),
                        (Ty::Number | Ty::Money | Ty::Integer, Value::String(s)) => {
                            s.parse().map_or_else(|_| Cell::text(s.clone()), Cell::Num)
                        }
                        (Ty::Date, Value::String(s)) => s.parse().map_or_else(|_| Cell::text(s.clone()), Cell::Date),
                        (Ty::Timestamp, Value::String(s)) => DateTime::parse_from_rfc3339(s)
                            .map(|t| Cell::Time(t.with_timezone(&Utc)))
                            .unwrap_or_else(|_| Cell::text(s.clone())),
                        (_, Value::String(s)) => Cell::text(s.clone()),
                        (_, other) => Cell::text(other.to_string()),
                    }
                })
                .collect()
        })
        .collect();
    let first_dim = q.columns.iter().position(|c| c.role == "dimension");
    let first_measure = q.columns.iter().position(|c| c.role == "measure");
    let chart = match (first_dim, first_measure) {
        (Some(d), Some(m)) => Some(ChartSpec {
            line: q.chart == "line",
            label_col: d,
            value_col: m,
            previous_col: None,
        }),
        _ => None,
    };
    Table {
        title: format!("{} query", q.object),
        headers,
        rows,
        chart,
        chart_rows: None,
    }
}

/// CSV: UTF-8 with a byte-order mark (spreadsheet programs then read Chinese text),
/// a header row, RFC 4180 quoting.
pub fn csv(t: &Table, tz: FixedOffset) -> String {
    fn field(out: &mut String, s: &str) {
        if s.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&s.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(s);
        }
    }
    let mut out = String::from("\u{feff}");
    for (i, h) in t.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, h);
    }
    out.push_str("\r\n");
    for row in &t.rows {
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, &c.display(tz));
        }
        out.push_str("\r\n");
    }
    out
}

/// XLSX: numbers and dates as typed cells (amounts with two decimals), a bold header
/// row frozen above the data, columns fitted to their contents.
pub fn xlsx(t: &Table, tz: FixedOffset) -> AppResult<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| AppError::internal(format!("xlsx: {e}"));
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let time = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let decimal = Format::new().set_num_format("#,##0.00");
    let sheet = book.add_worksheet();
    sheet.set_name("report").map_err(err)?;
    for (i, h) in t.headers.iter().enumerate() {
        sheet
            .write_string_with_format(0, col(i)?, h.as_str(), &bold)
            .map_err(err)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(|_| AppError::internal("too many rows for a sheet"))?;
        for (i, c) in row.iter().enumerate() {
            let i = col(i)?;
            match c {
                Cell::Empty => {}
                Cell::Text(s) => {
                    sheet.write_string(r, i, s.as_str()).map_err(err)?;
                }
                Cell::Int(n) => {
                    sheet.write_number(r, i, *n as f64).map_err(err)?;
                }
                Cell::Num(d) => {
                    sheet
                        .write_number_with_format(r, i, d.to_f64().unwrap_or_default(), &decimal)
                        .map_err(err)?;
                }
                Cell::Date(d) => {
                    let x = excel_date(*d).map_err(err)?;
                    sheet.write_datetime_with_format(r, i, &x, &date).map_err(err)?;
                }
                Cell::Time(t) => {
                    let local = t.with_timezone(&tz);
                    let x = excel_date(local.date_naive())
                        .and_then(|d| {
                            d.and_hms(
                                u16::try_from(local.hour()).unwrap_or(0),
                                u8::try_from(local.minute()).unwrap_or(0),
                                f64::from(local.second()),
                            )
                        })
                        .map_err(err)?;
                    sheet.write_datetime_with_format(r, i, &x, &time).map_err(err)?;
                }
            }
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(err)?;
    sheet.autofit();
    book.save_to_buffer().map_err(err)
}

fn col(i: usize) -> AppResult<u16> {
    u16::try_from(i).map_err(|_| AppError::internal("too many columns for a sheet"))
}

fn excel_date(d: NaiveDate) -> Result<rust_xlsxwriter::ExcelDateTime, rust_xlsxwriter::XlsxError> {
    rust_xlsxwriter::ExcelDateTime::from_ymd(
        u16::try_from(d.year()).unwrap_or(1900),
        u8::try_from(d.month()).unwrap_or(1),
        u8::try_from(d.day()).unwrap_or(1),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG chart of the table: bars (the previous period beside, lighter) or a line, with
/// labels, values and the title. Plain SVG 1.1, no script.
pub fn svg(t: &Table, tz: FixedOffset) -> String {
    let (width, height, left, bottom, top) = (720.0_f64, 400.0_f64, 70.0_f64, 80.0_f64, 40.0_f64);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{left}" y="24" font-size="15" font-weight="bold">{}</text>"##,
        escape(&t.title)
    );
    let points: Vec<(String, f64, Option<f64>)> = match &t.chart {
        Some(spec) => {
            let source: Vec<&Vec<Cell>> = t.chart_rows.as_ref().unwrap_or(&t.rows).iter().collect();
            source
                .into_iter()
                .take(40)
                .filter_map(|row| {
                    let label = row.get(spec.label_col)?.display(tz);
                    let value = row.get(spec.value_col)?.number()?;
                    let prev = spec.previous_col.and_then(|c| row.get(c)).and_then(Cell::number);
                    Some((label, value, prev))
                })
                .collect()
        }
        None => Vec::new(),
    };
    if points.is_empty() {
        let _ = write!(
            out,
            r##"<text x="{left}" y="{}" fill="#666666">no data</text></svg>"##,
            height / 2.0
        );
        return out;
    }
    let max = points
        .iter()
        .flat_map(|(_, v, p)| [Some(*v), *p])
        .flatten()
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let plot_w = width - left - 20.0;
    let plot_h = height - top - bottom;
    let base = top + plot_h;
    let _ = write!(
        out,
        r##"<line x1="{left}" y1="{base}" x2="{}" y2="{base}" stroke="#333333"/>"##,
        left + plot_w
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let y = base - plot_h * f64::from(k) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eeeeee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#666666">{}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            short(v)
        );
    }
    let n = points.len() as f64;
    let slot = plot_w / n;
    let line = t.chart.as_ref().is_some_and(|c| c.line);
    let mut path = String::new();
    for (i, (label, v, prev)) in points.iter().enumerate() {
        let x0 = left + slot * i as f64;
        let h = plot_h * v / max;
        if line {
            let x = x0 + slot / 2.0;
            let _ = write!(path, "{}{x:.1},{:.1} ", if i == 0 { "M" } else { "L" }, base - h);
            let _ = write!(
                out,
                r##"<circle cx="{x:.1}" cy="{:.1}" r="3" fill="#1f6feb"/>"##,
                base - h
            );
        } else {
            let bars = if prev.is_some() { 2.0 } else { 1.0 };
            let w = (slot * 0.7 / bars).max(1.0);
            if let Some(p) = prev {
                let hp = plot_h * p / max;
                let _ = write!(
                    out,
                    r##"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{hp:.1}" fill="#b6d4fe"><title>previous {}</title></rect>"##,
                    x0 + slot * 0.15,
                    base - hp,
                    short(*p)
                );
            }
            let x = x0 + slot * 0.15 + if prev.is_some() { w } else { 0.0 };
            let _ = write!(
                out,
                r##"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="#1f6feb"><title>{}</title></rect>"##,
                base - h,
                short(*v)
            );
        }
        let lx = x0 + slot / 2.0;
        let ly = base + 14.0;
        let _ = write!(
            out,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-35 {lx:.1} {ly:.1})">{}</text>"#,
            escape(&label.chars().take(24).collect::<String>())
        );
    }
    if line {
        let _ = write!(
            out,
            r##"<path d="{}" fill="none" stroke="#1f6feb" stroke-width="2"/>"##,
            path.trim()
        );
    }
    out.push_str("</svg>");
    out
}

/// 1234567 -> "1.23M", for axis labels.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}K", v / 1e3)
    } else if a.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
