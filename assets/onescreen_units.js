/* Units on maps (components/unit_layer.py): a unit is a small disc in its status's colour with
   its kind's character (泵 a pump truck, 汛 a flood crew…); a facility is a square. Parked units
   cluster at city zoom into a grey count; busy ones are drawn one by one above them with a
   dashed line to their job. Walls get no tooltips (no crew is named in public). */
window.onescreen = Object.assign({}, window.onescreen, {
    units: {
      point: function (feature, latlng, context) {
        const h = (context && context.hideout) || {};
        const p = feature.properties;
        const color = (h.colors || {})[p.s] || "#3ddc97";
        const marker = L.marker(latlng, {
          keyboard: false,
          icon: L.divIcon({
            className: "os-unit os-unit-" + p.s + (p.f ? " os-unit-facility" : ""),
            html: "<span style='background:" + color + "'>" + (p.g || "") + "</span>",
            iconSize: L.point(18, 18),
          }),
        });
        return p.tip ? marker.bindTooltip(p.tip, {className: "os-map-tip"}) : marker;
      },
      cluster: function (feature, latlng, index) {
        const p = feature.properties;
        return L.marker(latlng, {
          keyboard: false,
          icon: L.divIcon({
            className: "os-unit-cluster",
            html: "<span>" + p.point_count_abbreviated + "</span>",
            iconSize: L.point(20, 20),
          }),
        });
      },
      route: function (feature, context) {
        const h = (context && context.hideout) || {};
        return {
          color: (h.colors || {})[feature.properties.s] || "#29b6f6",
          weight: 2,
          opacity: 0.85,
          dashArray: "6 5",
          interactive: false,
        };
      },
    },
});
