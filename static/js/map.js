// Vector maps of grids and buildings with Leaflet: no tile server needed. A tile URL may be
// configured (data-tile-url on <body>); without one the map is plain polygons on a light ground.
/* global L */
import { api } from "./api.js";

const STYLES = {
  grid: { color: "#1f5fa8", weight: 2, fillColor: "#dce9f7", fillOpacity: 0.35 },
  building: { color: "#555", weight: 1, fillColor: "#b9b9b9", fillOpacity: 0.7 },
  selected: { color: "#b3261e", weight: 3, fillColor: "#f4b4ae", fillOpacity: 0.8 },
};

export function createMap(element, { center = [32.035, 118.785], zoom = 15 } = {}) {
  const map = L.map(element, { preferCanvas: false, zoomControl: true }).setView(center, zoom);
  const tiles = document.body.dataset.tileUrl;
  if (tiles) L.tileLayer(tiles, { maxZoom: 19, attribution: document.body.dataset.tileAttribution || "" }).addTo(map);
  map.attributionControl.addAttribution("© OpenStreetMap contributors (ODbL)");
  return map;
}

/** Load areas (GeoJSON pages of /api/v1/areas) and draw them; returns the Leaflet layer. */
export async function drawAreas(map, query, { style = "grid", onClick, fit = false } = {}) {
  const features = [];
  let next = `/areas?${new URLSearchParams({ limit: 5000, ...query })}`;
  while (next) {
    const page = await api(next);
    features.push(...page.features);
    next = page.next ? page.next.replace(/^\/api\/v1/, "") : null;
  }
  const layer = L.geoJSON({ type: "FeatureCollection", features }, {
    style: () => STYLES[style],
    onEachFeature: (feature, shape) => {
      shape.feature = feature;
      if (onClick) shape.on("click", (event) => onClick(feature, shape, event));
    },
  }).addTo(map);
  if (fit && features.length) map.fitBounds(layer.getBounds(), { padding: [10, 10] });
  return layer;
}

export function highlight(shape, on = true) {
  shape.setStyle(on ? STYLES.selected : STYLES.building);
}

const SLA_COLOURS = { green: "#1b7f3b", amber: "#b86e00", red: "#b3261e" };

/** A round marker for an incident, coloured by its SLA state. */
export function incidentMarker(incident) {
  return L.circleMarker([incident.location.lat, incident.location.lon], {
    radius: 9, weight: 2, color: "#fff", fillOpacity: 0.95,
    fillColor: SLA_COLOURS[incident.sla_state] || SLA_COLOURS.green,
  });
}

export function recolour(marker, incident) {
  marker.setStyle({ fillColor: SLA_COLOURS[incident.sla_state] || SLA_COLOURS.green });
  marker.setLatLng([incident.location.lat, incident.location.lon]);
}
