// ECharts, loaded by index.html as the vendored UMD build (window.echarts). Charts are
// countable through ECharts' own model, which is what the browser tests read.

export const echarts = window.echarts;

const instances = new Set();

export function chart(el) {
  const existing = echarts.getInstanceByDom(el);
  if (existing) return existing;
  const c = echarts.init(el, null, { renderer: 'canvas' });
  instances.add(c);
  return c;
}

// Disposes the charts inside `root` (before a page replaces its content).
export function disposeIn(root) {
  for (const c of [...instances]) {
    if (c.isDisposed() || root.contains(c.getDom())) {
      if (!c.isDisposed()) c.dispose();
      instances.delete(c);
    }
  }
}

window.addEventListener('resize', () => {
  for (const c of instances) if (!c.isDisposed()) c.resize();
});

export const palette = ['#1f4e79', '#c55a11', '#548235', '#7030a0', '#bf9000', '#2e75b6'];

export const heatColors = ['#f7fbff', '#c6dbef', '#6baed6', '#2171b5', '#08306b'];
export const ratioColors = ['#2166ac', '#92c5de', '#f7f7f7', '#f4a582', '#b2182b'];

export function baseGrid(extra = {}) {
  return { left: 70, right: 30, top: 40, bottom: 60, containLabel: false, ...extra };
}
