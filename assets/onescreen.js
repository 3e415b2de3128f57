/* Keeps the view's state in the address bar without reloading (shareable URLs). */
window.onescreen = Object.assign({}, window.onescreen, {
  queryDefaults: {metric: "open_incidents", stack: "severity", layer: "streets", window: "24h"},
  syncQuery: function (values, defaults) {
    const url = new URL(window.location.href);
    Object.keys(values).forEach(function (key) {
      let value = values[key];
      if (Array.isArray(value)) { value = value.join(","); }
      if (value === null || value === undefined || value === "" || value === (defaults || {})[key]) {
        url.searchParams.delete(key);
      } else {
        url.searchParams.set(key, value);
      }
    });
    if (url.toString() !== window.location.href) {
      window.history.replaceState(window.history.state, "", url.toString());
    }
  },
});
