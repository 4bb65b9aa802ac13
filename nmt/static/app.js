"use strict";
// The page of `nmt serve`: it asks /v1/models what is loaded, sends the text to
// /v1/translate, shows the best translation and the n-best list, and draws the
// attention of the chosen hypothesis as an SVG heatmap (one row per target piece
// and one for EOS, one column per source piece). Nothing is loaded from elsewhere.

const SVG = "http://www.w3.org/2000/svg";
const CELL = 22; // px per heatmap cell
const EOS = "</s>";
const $ = (id) => document.getElementById(id);
let models = [];

async function api(path, body) {
  const headers = {};
  if ($("key").value) headers["X-API-Key"] = $("key").value;
  const options = { headers };
  if (body !== undefined) {
    options.method = "POST";
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) $("key-row").hidden = false;
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function say(message, isError = false) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgElement(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const chosenModel = () => models.find((m) => m.name === $("model").value);

async function loadModels() {
  try {
    models = (await api("/v1/models")).models;
  } catch (error) {
    say(`Cannot list the models: ${error.message}`, true);
    return;
  }
  $("model").replaceChildren(...models.map((m) =>
    new Option(`${m.name} (${m.source_language} → ${m.target_language})`, m.name)));
  showModel();
  say("");
}

function showModel() {
  const model = chosenModel();
  if (!model) return;
  $("languages").textContent = `${model.source_language} → ${model.target_language}`;
  $("beam").value = model.defaults.beam;
  $("n-best").value = Math.min(model.defaults.beam, 3);
}

async function translate(event) {
  event.preventDefault();
  const model = chosenModel();
  if (!model) {
    say("No model: enter the API key, or check the server.", true);
    return;
  }
  const text = $("text").value.split("\n").map((line) => line.trim()).filter(Boolean);
  if (!text.length) return;
  const beam = Number($("beam").value);
  const request = { model: model.name, text, beam, n_best: Math.min(Number($("n-best").value), beam),
                    attention: model.attention };
  $("translate").disabled = true;
  say("Translating…");
  try {
    showTranslations((await api("/v1/translate", request)).translations);
    say("");
  } catch (error) {
    say(error.message, true);
  } finally {
    $("translate").disabled = false;
  }
}

function showTranslations(translations) {
  $("results").replaceChildren(...translations.map(showTranslation));
}

function showTranslation(translation) {
  const box = element("article", "result");
  const list = element("ol", "n-best");
  const attention = element("div", "attention");
  const choose = (index) => {
    [...list.children].forEach((item, i) => item.classList.toggle("chosen", i === index));
    const hypothesis = translation.hypotheses[index];
    attention.replaceChildren();
    if (hypothesis.attention && hypothesis.attention.length) {
      attention.append(
        element("p", "caption", `Attention of hypothesis ${index + 1}: one row per target ` +
                `piece and one for ${EOS}, one column per source piece (darker = more).`),
        heatmap(translation.source_pieces, hypothesis.pieces, hypothesis.attention));
    }
  };
  translation.hypotheses.forEach((hypothesis, index) => {
    const item = element("li", "", hypothesis.text);
    item.append(element("span", "score", `score ${hypothesis.score.toFixed(3)}`));
    item.tabIndex = 0;
    item.title = "Show this hypothesis's attention";
    item.addEventListener("click", () => choose(index));
    item.addEventListener("keydown", (event) => { if (event.key === "Enter") choose(index); });
    list.append(item);
  });
  box.append(element("p", "source", translation.source),
             element("p", "translation", translation.hypotheses[0].text), list, attention);
  choose(0);
  return box;
}

// rows: target pieces then EOS; columns: source pieces; matrix[row][column] in [0, 1].
function heatmap(sourcePieces, targetPieces, matrix) {
  const rows = [...targetPieces, EOS];
  const left = 10 + 7.5 * Math.max(...rows.map((piece) => piece.length));
  const top = 10 + 6.5 * Math.max(...sourcePieces.map((piece) => piece.length));
  const width = left + CELL * sourcePieces.length + 10;
  const height = top + CELL * rows.length + 10;
  const svg = svgElement("svg", {
    class: "heatmap", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "attention: one row per target piece and one for EOS, one column per source piece",
  });
  const columns = svgElement("g", { class: "columns" });
  sourcePieces.forEach((piece, j) => {
    const x = left + CELL * j + CELL / 2, y = top - 6;
    columns.append(svgElement("text", { x, y, transform: `rotate(-60 ${x} ${y})` }, piece));
  });
  svg.append(columns);
  rows.forEach((piece, i) => {
    const row = svgElement("g", { class: "row", "data-piece": piece });
    const y = top + CELL * i;
    row.append(svgElement("text", { x: left - 6, y: y + CELL * 0.68, "text-anchor": "end" }, piece));
    matrix[i].forEach((weight, j) => {
      const cell = svgElement("rect", {
        x: left + CELL * j, y, width: CELL - 1, height: CELL - 1,
        // sqrt: weights spread over many pieces stay visible; the tooltip has the value
        fill: "#1f4e8c", "fill-opacity": Math.sqrt(Math.max(weight, 0.001)).toFixed(3),
      });
      cell.append(svgElement("title", {}, `${piece} → ${sourcePieces[j]}: ${weight.toFixed(3)}`));
      row.append(cell);
    });
    svg.append(row);
  });
  return svg;
}

$("form").addEventListener("submit", translate);
$("model").addEventListener("change", showModel);
$("key").addEventListener("change", loadModels);
loadModels();
