/* The offline map context (sea, coast, rivers, metro, roads; issue 19 item 5): faint, under the
   data. Served by /geo/context.geojson; components/area_map.py puts the sea in a pane under the
   areas and the rest in one above their fills but below every marker and label. Station dots
   appear from zoom 12 and their names from 13 (a class on the map, set on zoom), so the city view
   stays quiet, and are made only then, in view; the river's name sits on the part of it nearest
   the middle of the view. */
(function () {
  const NEAR = 12, NAMES = 13;

  function zoomClasses(map) {
    if (map._osContext) {
      return;
    }
    map._osContext = true;
    const apply = function () {
      const z = map.getZoom(), box = map.getContainer().classList;
      box.toggle("os-ctx-near", z >= NEAR);
      box.toggle("os-ctx-names", z >= NAMES);
    };
    map.on("zoomend", apply);
    apply();
  }

  // Stations are many (300 around Pudong) and shown only from zoom 12: each is a placeholder
  // until the map is that near and it is in view; one listener per map places them all
  function showStations(map) {
    map._osStationsQueued = false;
    if (!map._mapPane || !map._loaded) {
      return;  // the map went (the page changed) before its queued placing ran
    }
    // walls are read from across the room: no station there (their dots were noise at 3 m)
    const wall = !!map.getContainer().closest(".os-wall-area-map");
    const near = !wall && map.getZoom() >= NEAR, view = map.getBounds().pad(0.25);
    map._osStations.forEach(function (station) {
      station.show(near && view.contains(station._latlng));
    });
  }

  function queueStations(map) {
    if (!map._osStations) {
      map._osStations = new Set();
      map.on("zoomend moveend", function () { showStations(map); });
    }
    if (!map._osStationsQueued) {
      map._osStationsQueued = true;
      window.setTimeout(function () { showStations(map); }, 0);
    }
    return map._osStations;
  }

  // made on first use: Leaflet is there by then, whatever the order scripts loaded in
  let Station = null;
  const stationLayer = function () {
    return Station || (Station = L.Layer.extend({
    initialize: function (latlng, name) {
      this._latlng = L.latLng(latlng);
      this._name = name;
      this._marker = null;
    },
    onAdd: function (map) {
      zoomClasses(map);
      queueStations(map).add(this);
    },
    onRemove: function (map) {
      // nothing to place when a station goes (the whole map may be going)
      if (map._osStations) { map._osStations.delete(this); }
      this.show(false);
    },
    show: function (on) {
      if (on && !this._marker && this._map) {
        this._marker = L.marker(this._latlng, {
          pane: "os-context",
          interactive: false,
          keyboard: false,
          icon: L.divIcon({
            className: "os-ctx-station",
            html: "<span class='os-ctx-station-dot'></span>" +
                  "<span class='os-ctx-station-name'>" + this._name + "</span>",
            iconSize: null,
          }),
        }).addTo(this._map);
      } else if (!on && this._marker) {
        this._marker.remove();
        this._marker = null;
      }
    },
  }));
  };

  function placeRiverName(layer) {
    const map = layer._map;
    if (!map) {
      return;
    }
    const view = map.getBounds().pad(-0.15), centre = map.getCenter();
    let best = null, bestDistance = Infinity;
    layer.getLatLngs().flat(3).forEach(function (point) {
      const d = view.contains(point) ? centre.distanceTo(point) : Infinity;
      if (d < bestDistance) {
        best = point;
        bestDistance = d;
      }
    });
    if (best) {
      layer.openTooltip(best);
    } else {
      layer.closeTooltip();
    }
  }

  function english(context) {
    return ((context && context.hideout) || {}).lang === "en";
  }

  const STYLES = {
    water: {stroke: false, fillColor: "#2a6fb0", fillOpacity: 0.16},
    coast: {color: "#5b8fc0", weight: 1, opacity: 0.5, fill: false},
    river: {color: "#3d8fe0", weight: 8, opacity: 0.32, lineCap: "round", fill: false},
    road: {color: "#c8d3e3", weight: 1.5, opacity: 0.28, fill: false},
    metro_line: {weight: 2, opacity: 0.4, fill: false},
  };

  window.onescreen = Object.assign({}, window.onescreen, {
    context: {
      style: function (feature) {
        const p = feature.properties;
        const style = Object.assign({interactive: false}, STYLES[p.kind] || STYLES.road);
        if (p.kind === "metro_line") {
          style.color = p.color || "#8a9bb5";
        }
        style.className = "os-ctx os-ctx-" + p.kind;
        // the sea goes under the areas' fills: one layer (one fetch), two panes; Leaflet takes a
        // path's pane from its style, which it applies before adding the path
        style.pane = p.kind === "water" ? "os-context-water" : "os-context";
        return style;
      },
      station: function (feature, latlng, context) {
        const p = feature.properties;
        return new (stationLayer())(latlng, (english(context) && p.name_en) || p.name_zh || "");
      },
      label: function (feature, layer, context) {
        const p = feature.properties;
        if (p.kind !== "river" || !p.name_zh) {
          return;
        }
        const text = (english(context) && p.name_en) || p.name_zh;
        layer.bindTooltip(text, {
          permanent: true,
          direction: "center",
          pane: "os-context",
          className: "os-ctx-river-name",
        });
        const place = function () {
          placeRiverName(layer);
        };
        layer.on("add", function () {
          zoomClasses(layer._map);
          layer._map.on("moveend", place);
          place();
        });
        // a refetched layer is removed and added again: one listener per map at a time
        layer.on("remove", function () {
          layer._map.off("moveend", place);
        });
      },
    },
  });
})();
