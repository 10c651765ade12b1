// Charts on TradingView's lightweight-charts v5 (vendor/lightweight-charts, `make vendor-charts`):
// loaded on first use (only the pages with a chart fetch it), themed like the rest of the UI.
// v5's API: chart.addSeries(CandlestickSeries | HistogramSeries | LineSeries, options, paneIndex).
//
// Every chart is a canvas: its host carries an aria-label and data-* attributes saying what it
// shows (for screen readers, and for the browser test), and the page shows the same numbers as
// text (tables, lists) beside it.

import { axisCents, candleBars, cleanCandles, compactCents, indexLine, maLine, toTime, volumeBars,
  DOWN_COLOR, MA_COLORS, MA_LINES, UP_COLOR } from "./analytics_model.js";

const LIBRARY = "./vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
let library = null;

/** The library's module (one import, shared). */
export function loadCharts() {
  library ??= import(LIBRARY).catch((error) => {
    library = null; // a failed load may be retried (e.g. after a network error)
    throw error;
  });
  return library;
}

const LINE = "rgba(36, 48, 73, 0.55)";
const BORDER = "#243049";

function chartOptions(lib, priceFormatter) {
  return {
    autoSize: true,
    layout: {
      background: { type: lib.ColorType.Solid, color: "transparent" },
      textColor: "#9aa6bd",
      fontSize: 12,
      fontFamily: "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
      panes: { separatorColor: BORDER, separatorHoverColor: "rgba(245, 196, 81, 0.25)" },
    },
    grid: { vertLines: { color: LINE }, horzLines: { color: LINE } },
    rightPriceScale: { borderColor: BORDER },
    timeScale: { borderColor: BORDER, timeVisible: false, secondsVisible: false },
    crosshair: { mode: lib.CrosshairMode.Normal },
    localization: { priceFormatter },
  };
}

/**
 * Frames a chart's bars: all of them when there are at least `room`; fewer are drawn at the width
 * `room` bars would have, on the right (a history of a few periods stays a few slim bars, not a
 * wall of colour). A logical range rather than maxBarSpacing, which makes the library assert when
 * a (transient) width is narrower than the cap; re-applied when the size is known or changes.
 * Returns frame(count).
 */
function framer(chart, room) {
  let count = 0;
  const apply = () => {
    if (count >= room) chart.timeScale().fitContent();
    else if (count > 0) chart.timeScale().setVisibleLogicalRange({ from: count - room, to: count });
  };
  chart.timeScale().subscribeSizeChange(() => {
    if (count < room) apply();
  });
  return (n) => {
    count = n;
    apply();
  };
}

const CENTS = { type: "custom", formatter: axisCents, minMove: 1 };
const COMPACT = { type: "custom", formatter: compactCents, minMove: 1 };

/**
 * A card's price chart: candles (cents) with two moving averages (MA_LINES of the interval) over a
 * volume histogram in a pane of its own. Returns {set(candles, interval), update(candle, all),
 * remove()}; `all` = the candles after the merge.
 */
export async function priceChart(host) {
  const lib = await loadCharts();
  const chart = lib.createChart(host, chartOptions(lib, axisCents));
  const bars = chart.addSeries(lib.CandlestickSeries, {
    upColor: UP_COLOR, downColor: DOWN_COLOR, borderVisible: false,
    wickUpColor: UP_COLOR, wickDownColor: DOWN_COLOR, priceFormat: CENTS,
  });
  const volume = chart.addSeries(lib.HistogramSeries, {
    priceFormat: COMPACT, priceLineVisible: false, lastValueVisible: false,
  }, 1);
  const averages = MA_COLORS.map((color) => chart.addSeries(lib.LineSeries, {
    color, lineWidth: 1, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false,
    priceFormat: CENTS,
  }));
  const frame = framer(chart, 40);
  chart.panes()[0]?.setStretchFactor(3);
  chart.panes()[1]?.setStretchFactor(1);
  let lastTime = null;
  let fields = MA_LINES["1d"].map(([field]) => field);
  return {
    set(candles, interval = null) {
      if (interval) fields = (MA_LINES[interval] ?? MA_LINES["1d"]).map(([field]) => field);
      const clean = cleanCandles(candles);
      bars.setData(candleBars(clean));
      volume.setData(volumeBars(clean));
      averages.forEach((line, i) => line.setData(maLine(clean, fields[i])));
      lastTime = clean.length ? toTime(clean[clean.length - 1].t) : null;
      frame(clean.length);
    },
    update(candle, all) {
      const [bar] = candleBars([candle]);
      if (!bar) return;
      if (lastTime !== null && bar.time < lastTime) {
        this.set(all); // a late candle of an earlier period: redraw (update() only moves forward)
        return;
      }
      bars.update(bar);
      volume.update(volumeBars([candle])[0]);
      averages.forEach((line, i) => {
        const [point] = maLine([candle], fields[i]);
        if (point) line.update(point);
      });
      if (lastTime !== null && bar.time > lastTime) frame(bars.data().length);
      lastTime = bar.time;
    },
    remove() {
      chart.remove();
    },
  };
}

/**
 * The market index: the market's line (gold) and a compared segment's (blue). Values are index
 * points (100 = the base period). Returns {set(which, points), update(which, point, all), remove()}
 * with `which` "market" or "compare".
 */
export async function indexChart(host) {
  const lib = await loadCharts();
  const number = (v) => (Number.isFinite(v) ? v.toFixed(1) : "");
  const chart = lib.createChart(host, chartOptions(lib, number));
  const style = { lineWidth: 2, pointMarkersRadius: 4, priceFormat: { type: "price", precision: 1, minMove: 0.1 } };
  const lines = {
    market: chart.addSeries(lib.LineSeries, { ...style, color: "#f5c451" }),
    compare: chart.addSeries(lib.LineSeries, { ...style, color: "#6ea8ff" }),
  };
  const last = { market: null, compare: null };
  const frame = framer(chart, 12);
  return {
    set(which, points) {
      const data = indexLine(points);
      lines[which].setData(data);
      // A line of one or two points is hard to see: mark its points. (No titles on the axis: they
      // would cover the latest points; the legend and the table name the lines.)
      lines[which].applyOptions({ pointMarkersVisible: data.length < 3 });
      last[which] = data.length ? data[data.length - 1].time : null;
      frame(Math.max(...Object.values(lines).map((l) => l.data().length)));
    },
    update(which, point, all) {
      const [p] = indexLine([point]);
      if (!p) return;
      if (last[which] !== null && p.time < last[which]) {
        this.set(which, all);
        return;
      }
      lines[which].update(p);
      last[which] = p.time;
    },
    remove() {
      chart.remove();
    },
  };
}

/**
 * A portfolio's value over time (cents): the value as a gold area, its low–high range as two
 * dashed lines, and below it, in a pane of its own, the P/L since the range's first day (green
 * above zero, red below). Returns {set(lines), remove()}, `lines` from portfolio_model.js's
 * historyLines.
 */
export async function portfolioChart(host) {
  const lib = await loadCharts();
  const chart = lib.createChart(host, chartOptions(lib, axisCents));
  const quiet = { priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false, priceFormat: CENTS };
  const band = { ...quiet, color: "rgba(154, 166, 189, 0.55)", lineWidth: 1, lineStyle: lib.LineStyle.Dashed };
  const high = chart.addSeries(lib.LineSeries, band);
  const low = chart.addSeries(lib.LineSeries, band);
  const value = chart.addSeries(lib.AreaSeries, {
    lineColor: "#f5c451", lineWidth: 2, topColor: "rgba(245, 196, 81, 0.28)", bottomColor: "rgba(245, 196, 81, 0.02)",
    priceFormat: CENTS,
  });
  const pnl = chart.addSeries(lib.BaselineSeries, {
    baseValue: { type: "price", price: 0 }, lineWidth: 2, priceFormat: CENTS, priceLineVisible: false,
    topLineColor: UP_COLOR, topFillColor1: "rgba(61, 220, 151, 0.25)", topFillColor2: "rgba(61, 220, 151, 0.02)",
    bottomLineColor: DOWN_COLOR, bottomFillColor1: "rgba(255, 107, 107, 0.02)", bottomFillColor2: "rgba(255, 107, 107, 0.25)",
  }, 1);
  chart.panes()[0]?.setStretchFactor(3);
  chart.panes()[1]?.setStretchFactor(1);
  const frame = framer(chart, 12);
  return {
    set(lines) {
      value.setData(lines.value);
      high.setData(lines.high);
      low.setData(lines.low);
      pnl.setData(lines.pnl);
      // A line of a point or two is hard to see: mark its points.
      value.applyOptions({ pointMarkersVisible: lines.value.length < 3 });
      pnl.applyOptions({ pointMarkersVisible: lines.pnl.length < 3 });
      frame(lines.value.length);
    },
    remove() {
      chart.remove();
    },
  };
}
