// Reading the person's own data for the training worker. Nothing here sends
// anything anywhere: the bytes go to the worker in this tab, which trains on
// them (wasmclient/owndata_js.go).
'use strict';

const ownData = (() => {
  // The sample shape of each data set a run can use (coord.InputShape).
  const shapes = {
    mnist: { h: 28, w: 28, c: 1, classes: 10 },
    cifar10: { h: 32, w: 32, c: 3, classes: 10,
      names: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] },
  };
  const maxFile = 256e6; // bytes per IDX file
  const maxImageFile = 20e6;
  const maxImages = 60000;

  async function readFile(f) {
    if (f.size > maxFile) throw new Error(`${f.name} is ${ui.bytes(f.size)}; the limit is ${ui.bytes(maxFile)}`);
    return new Uint8Array(await f.arrayBuffer());
  }

  // fromIDX reads an images file and a labels file (MNIST's IDX format, raw
  // or gzip). The worker tells them apart and checks them.
  async function fromIDX(files) {
    if (files.length !== 2) throw new Error(`pick exactly two files, the images and the labels (you picked ${files.length})`);
    const [a, b] = await Promise.all([readFile(files[0]), readFile(files[1])]);
    return { own: { kind: 'idx', files: [a, b] }, transfer: [a.buffer, b.buffer],
      summary: `${files[0].name} + ${files[1].name}` };
  }

  function labelOf(folder, shape) {
    if (/^\d+$/.test(folder)) {
      const n = parseInt(folder, 10);
      return n < shape.classes ? n : -1;
    }
    return shape.names ? shape.names.indexOf(folder.toLowerCase()) : -1;
  }

  // fromFolder decodes image files named <…>/<label>/<file> into the run's
  // shape: scaled to fit on the image's own background colour, grayscale for
  // one channel (inverted when the background is light, as MNIST digits are
  // light on dark).
  async function fromFolder(files, shape, progress) {
    const picked = [];
    let skipped = 0;
    for (const f of files) {
      const parts = (f.webkitRelativePath || f.name).split('/');
      const label = parts.length >= 2 ? labelOf(parts[parts.length - 2], shape) : -1;
      if (label < 0 || !(f.type.startsWith('image/') || /\.(png|jpe?g|gif|bmp|webp)$/i.test(f.name)) || f.size > maxImageFile) {
        skipped++;
        continue;
      }
      picked.push([f, label]);
    }
    if (picked.length === 0) throw new Error('no images found in sub-folders named by label (0, 1, 2, …)');
    if (picked.length > maxImages) throw new Error(`${picked.length} images; the limit is ${maxImages}`);
    const { h, w, c } = shape;
    const images = new Uint8Array(picked.length * h * w * c);
    const labels = new Uint8Array(picked.length);
    const canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(w, h)
      : Object.assign(document.createElement('canvas'), { width: w, height: h });
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    let n = 0;
    for (const [f, label] of picked) {
      let bmp;
      try {
        bmp = await createImageBitmap(f);
      } catch (e) {
        skipped++;
        continue;
      }
      // Letterbox with the image's own background: its border's mean
      // colour, read from a stretched draw (on white, for transparency).
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, w, h);
      ctx.drawImage(bmp, 0, 0, w, h);
      ctx.fillStyle = borderColor(ctx.getImageData(0, 0, w, h).data, w, h);
      ctx.fillRect(0, 0, w, h);
      const s = Math.min(w / bmp.width, h / bmp.height);
      const dw = bmp.width * s, dh = bmp.height * s;
      ctx.drawImage(bmp, (w - dw) / 2, (h - dh) / 2, dw, dh);
      bmp.close();
      const px = ctx.getImageData(0, 0, w, h).data;
      const out = images.subarray(n * h * w * c, (n + 1) * h * w * c);
      if (c === 1) toGray(px, out, w, h);
      else for (let i = 0, j = 0; i < px.length; i += 4) { out[j++] = px[i]; out[j++] = px[i + 1]; out[j++] = px[i + 2]; }
      labels[n++] = label;
      if (progress && n % 50 === 0) progress(n, picked.length);
    }
    if (n === 0) throw new Error('none of the images could be decoded');
    const img = images.slice(0, n * h * w * c), lab = labels.slice(0, n);
    return { own: { kind: 'pixels', images: img, labels: lab }, transfer: [img.buffer, lab.buffer],
      summary: `${n} images from a folder` + (skipped ? ` (${skipped} files skipped)` : '') };
  }

  function borderColor(px, w, h) {
    const sum = [0, 0, 0];
    let n = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (y !== 0 && x !== 0 && y !== h - 1 && x !== w - 1) continue;
        const i = 4 * (y * w + x);
        sum[0] += px[i]; sum[1] += px[i + 1]; sum[2] += px[i + 2];
        n++;
      }
    }
    return `rgb(${sum.map((v) => Math.round(v / n)).join(',')})`;
  }

  // toGray writes luminance, inverted when the border is light.
  function toGray(px, out, w, h) {
    let border = 0, nb = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = 4 * (y * w + x);
        const v = Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]);
        out[y * w + x] = v;
        if (y === 0 || x === 0 || y === h - 1 || x === w - 1) { border += v; nb++; }
      }
    }
    if (border / nb > 127) for (let i = 0; i < out.length; i++) out[i] = 255 - out[i];
  }

  return { shapes, fromIDX, fromFolder };
})();
