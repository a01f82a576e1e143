// Line charts in plain SVG: a polyline over the points' values, a zero line, a top
// grid line labelled with the scale, and the time span along the bottom.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 150;
const PAD_LEFT = 44;
const PAD_BOTTOM = 16;

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

export function format(value, unit) {
  if (value === null || value === undefined) return "–";
  const digits = Number.isInteger(value) || Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}

export class LineChart {
  constructor(title, unit, id) {
    this.unit = unit;
    this.value = h("div", { class: "value", "data-chart-value": id }, "–");
    this.svg = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none", role: "img", "aria-label": title });
    this.node = h("div", { class: "panel chart", "data-chart": id }, h("h3", {}, title), this.value, this.svg);
  }

  // points: [{at, value}] oldest first; a null value leaves a gap.
  draw(points) {
    const last = points.length ? points[points.length - 1].value : null;
    this.value.textContent = format(last, this.unit);
    const values = points.map((p) => p.value).filter((v) => v !== null);
    const top = niceMax(Math.max(0, ...values));
    const plotW = WIDTH - PAD_LEFT;
    const plotH = HEIGHT - PAD_BOTTOM;
    const children = [
      svg("line", { class: "grid", x1: PAD_LEFT, y1: 4, x2: WIDTH, y2: 4 }),
      svg("line", { class: "grid", x1: PAD_LEFT, y1: plotH, x2: WIDTH, y2: plotH }),
      svg("text", { x: 2, y: 12 }, format(top, "")),
      svg("text", { x: 2, y: plotH }, "0"),
    ];
    if (points.length >= 2) {
      const start = points[0].at;
      const span = Math.max(1, points[points.length - 1].at - start);
      let run = [];
      const flush = () => {
        if (run.length) children.push(svg("polyline", { points: run.join(" ") }));
        run = [];
      };
      for (const p of points) {
        if (p.value === null) {
          flush();
          continue;
        }
        const x = PAD_LEFT + ((p.at - start) / span) * plotW;
        const y = plotH - (p.value / top) * (plotH - 4);
        run.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      }
      flush();
      children.push(svg("text", { x: PAD_LEFT, y: HEIGHT - 2 }, `last ${Math.round(span)} s`));
    }
    this.svg.replaceChildren(...children);
  }
}
