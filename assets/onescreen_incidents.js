/* The incidents page as a work queue: the selected incident framed in the table, ringed on the
   map, and the map brought to it (or to the chosen district). All in the browser: the server
   sends the rows and points once, a selection costs no round trip. */
(function () {
  // [[south, west], [north, east]] around an incident and its units' points, or null
  function unitsFrame(feature, units) {
    const points = ((units && units.features) || []).filter(function (f) {
      return f.geometry && f.geometry.type === "Point";
    });
    if (!feature || !points.length) { return null; }
    const all = points.map(function (f) { return f.geometry.coordinates; })
      .concat([feature.geometry.coordinates]);
    const lons = all.map(function (c) { return c[0]; });
    const lats = all.map(function (c) { return c[1]; });
    return [[Math.min.apply(null, lats), Math.min.apply(null, lons)],
            [Math.max.apply(null, lats), Math.max.apply(null, lons)]];
  }

  const noUpdate = function () { return window.dash_clientside.no_update; };
  // the DataTable's own stylesheet rules: the menu it would add is hidden on every table here
  const BASE_CSS = [{selector: ".dash-spreadsheet-menu", rule: "display: none"}];
  const FRAME = "#39c5ff";  // the theme's accent (inside a DataTable, --accent is its own)

  function selectedFeature(points, selected) {
    const features = (points && points.features) || [];
    return features.find(function (f) { return f.properties && f.properties.id === selected; });
  }

  window.onescreen = Object.assign({}, window.onescreen, {
    incidents: {
      // the ring around the selected incident's dot, drawn above every dot
      selectionRing: function (feature, latlng) {
        return L.circleMarker(latlng, {
          radius: 13,
          weight: 3,
          color: "#ffffff",
          fill: false,
          interactive: false,
          className: "os-incident-selected",
        });
      },
    },
  });

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.onescreen_incidents = {
    // the table's stylesheet: the selected incident's row framed and shaded (a stylesheet rule,
    // as the theme's cell background is !important), and scrolled into view
    frameRow: function (selected, rows) {
      const index = (rows || []).findIndex(function (r) { return r.id === selected; });
      const table = document.getElementById("incidents-table") || {};
      // the table keeps every rule it was ever given: the rows framed before are emptied
      const before = table.osFramed || [];
      // double quotes: the table finds its rules again by the browser's own spelling of them
      const row = 'td[data-dash-row="' + index + '"]';
      const rules = index < 0 ? [] : [
        {selector: row, rule: "background: #1d3f6e !important; border-top: 2px solid " + FRAME +
          " !important; border-bottom: 2px solid " + FRAME + " !important"},
        {selector: row + ":first-child", rule: "border-left: 4px solid " + FRAME + " !important"},
        {selector: row + ":last-child", rule: "border-right: 2px solid " + FRAME + " !important"},
      ];
      const now = rules.map(function (r) { return r.selector; });
      const emptied = before.filter(function (s) { return now.indexOf(s) < 0; })
        .map(function (s) { return {selector: s, rule: "--os-framed: 0"}; });
      table.osFramed = now;
      if (index >= 0) {
        window.setTimeout(function () {
          const cell = document.querySelector("#incidents-table " + row);
          if (cell) { cell.scrollIntoView({block: "nearest"}); }
        }, 50);
      }
      return BASE_CSS.concat(emptied, rules);
    },
    // the ring layer's data, and where the map goes: to the chosen district (the city when none)
    // when it is chosen or the first points arrive; to an incident when it becomes selected
    focus: function (selected, points, district, units, bounds) {
      const ctx = window.dash_clientside.callback_context;
      const fired = (ctx.triggered || []).map(function (t) { return t.prop_id.split(".")[0]; });
      const feature = selectedFeature(points, selected);
      const ring = {type: "FeatureCollection", features: feature ? [feature] : []};
      // what this map has done, kept on its element: a new page is a new map
      const map = document.getElementById("incidents-map") || {};
      const done = map.osFocus || (map.osFocus = {fitted: false, panned: null});
      const area = (bounds || {})[district || ""];
      const arrived = ((points && points.features) || []).length > 0;
      let viewport = noUpdate();
      const framed = unitsFrame(feature, units);
      if (framed && done.framed !== selected) {
        // the incident and the units sent to it or suggested, all in view once per selection
        viewport = {bounds: framed, transition: "fitBounds", options: {padding: [40, 40], maxZoom: 15}};
        done.framed = selected;
        done.panned = selected;
        done.fitted = true;
      } else if (feature && done.panned !== selected) {
        const c = feature.geometry.coordinates;
        viewport = {center: [c[1], c[0]], transition: "panTo"};
        done.panned = selected;
        done.fitted = true;
      } else if (area && (fired.indexOf("incidents-district") >= 0 || (arrived && !done.fitted))) {
        // the map's first fit can be made before its panel has its final size: fit again
        viewport = {bounds: area, transition: "fitBounds"};
        done.fitted = true;
        done.panned = null;
      }
      return [ring, viewport];
    },
  };
})();
