/* Serre console: a progress bar for the dataset upload forms. Ours (not vendored), served
 * by the gateway under /console/js/ with its SRI hash. Progressive enhancement only: a form
 * marked data-progression="ID" posts as a plain form without this script. With it, the
 * form is sent by XMLHttpRequest and the element ID (hidden until then) shows a <progress>
 * with the percentage and the bytes sent; its words come from the page, in its language
 * (data-modele, data-unites, data-envoye, data-echec), its status line is aria-live. The
 * answer is the page the plain form would have led to: a redirect is followed, a refusal
 * (422, 403…) replaces this page's body. No eval, no inline style (the console's CSP). */
(function () {
  'use strict';

  function fill(template, values) {
    var i = 0;
    return template.replace(/\{\}/g, function () {
      var v = values[i];
      i += 1;
      return v === undefined ? '' : String(v);
    });
  }

  /* A size in the page's language: « 1,2 Mo », « 1.2 MB » (units from data-unites). */
  function size(n, units, lang) {
    var u = 0;
    while (n >= 1000 && u + 1 < units.length) {
      n /= 1000;
      u += 1;
    }
    var digits = u === 0 ? 0 : 1;
    var text = new Intl.NumberFormat(lang, {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits
    }).format(n);
    return text + '\u00a0' + units[u];
  }

  function enhance(form) {
    var zone = document.getElementById(form.getAttribute('data-progression'));
    if (!zone || !window.XMLHttpRequest || !window.FormData || form.serreProgression) {
      return;
    }
    form.serreProgression = true;
    var bar = zone.querySelector('progress');
    var status = zone.querySelector('[aria-live]');
    var lang = document.documentElement.lang || 'fr';
    var units = (zone.getAttribute('data-unites') || 'o,ko,Mo,Go').split(',');
    var announced = -1;
    var sent = 0;

    function show(loaded, total) {
      sent = total;
      var percent = total > 0 ? Math.floor((loaded * 100) / total) : 0;
      bar.value = percent;
      bar.textContent = percent + ' %';
      /* Screen readers hear every tenth, and the end; sighted people see every step. */
      if (percent === 100 || percent - announced >= 10 || announced < 0) {
        announced = percent;
        status.textContent = fill(zone.getAttribute('data-modele') || '{} %', [
          new Intl.NumberFormat(lang).format(percent),
          size(loaded, units, lang),
          size(total, units, lang)
        ]);
      }
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var button = form.querySelector('[type=submit]');
      var data = new FormData(form);
      var total = 0;
      data.forEach(function (v) {
        total += v && v.size ? v.size : 0;
      });
      zone.hidden = false;
      announced = -1;
      show(0, total);
      if (button) {
        button.disabled = true;
      }
      var xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.upload.addEventListener('progress', function (e) {
        show(e.loaded, e.lengthComputable ? e.total : total);
      });
      xhr.upload.addEventListener('load', function () {
        show(sent, sent);
        status.textContent = status.textContent + ' ' + (zone.getAttribute('data-envoye') || '');
      });
      xhr.addEventListener('load', function () {
        var sent = form.action.split('?')[0];
        var landed = (xhr.responseURL || '').split('?')[0];
        if (landed && landed !== sent) {
          window.location.assign(xhr.responseURL);
          return;
        }
        var page = new DOMParser().parseFromString(xhr.responseText, 'text/html');
        document.title = page.title;
        document.body.replaceWith(document.adoptNode(page.body));
        window.scrollTo(0, 0);
        start();
      });
      xhr.addEventListener('error', function () {
        status.textContent = zone.getAttribute('data-echec') || '';
        if (button) {
          button.disabled = false;
        }
      });
      xhr.send(data);
    });
  }

  function start() {
    var forms = document.querySelectorAll('form[data-progression]');
    for (var i = 0; i < forms.length; i += 1) {
      enhance(forms[i]);
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
