/* The council's console. Plain script, no build step, no inline code (the page's CSP allows
 * this origin's scripts only). The API key lives in this tab: a variable and sessionStorage,
 * never localStorage. Every URL is relative to the page, so the console works under a
 * gateway's path prefix. Data is put into the page with textContent, never as HTML. */
(function () {
  "use strict";

  var KEY_SLOT = "referral-console-key";
  var LANG_SLOT = "referral-console-lang";
  var ZONE = "Asia/Shanghai";
  var REASONS = ["no_bed", "no_specialist_on_duty", "beyond_capability", "incomplete_information", "patient_declined", "other"];
  var LEAK_REASONS = ["no_free_capacity", "stale_census", "only_parent_specialty", "previously_declined", "no_member_offers"];

  var T = {
    zh: {
      title: "医联体管理控制台", signin_title: "登录", signin: "登录", signout: "退出",
      key_label: "API 密钥（医联体管理办公室、医保或管理员）",
      signin_hint: "密钥只保存在本标签页（sessionStorage），关闭标签页即失效。",
      refused_role: "此密钥无权使用控制台：需要医联体管理办公室、医保或管理员的密钥。",
      refused_key: "密钥无效或已停用。", failed: "请求失败", loading: "正在加载…", loaded: "已更新",
      consortium: "医联体", year: "年份", member: "成员单位", reload: "刷新", csv: "下载 CSV",
      all_members: "全部成员（合计）", monthly_title: "月度转诊指标", leaks_title: "流失与候床分析",
      leaks_hint: "根据系统保存的路由决策：患者转出医联体或进入候床名单时，哪些成员因何原因未能接收。",
      beds_title: "床位看板", green_title: "绿色通道时限", appraisal_title: "考核记分卡",
      beds_insurer: "床位看板仅供医联体管理办公室和管理员查看。",
      no_data: "暂无数据", month: "月份", role_council: "医联体管理办公室", role_insurer: "医保",
      role_admin: "管理员",
      f_up_sent: "上转发出", f_up_received: "上转接收", f_down_sent: "下转发出", f_down_received: "下转接收",
      f_accepted: "已接收", f_acceptance_rate: "接收率", f_accept_minutes_median: "接收用时中位数（分钟）",
      f_accept_minutes_p90: "接收用时 P90（分钟）", f_rejected: "拒收", f_up_treated_in_consortium_share: "医联体内就诊占比",
      f_up_treated_in_county_share: "县域内就诊占比", f_waitlisted: "进入候床", f_waitlist_placed: "候床后安排",
      f_waitlist_minutes_median: "候床时长中位数（分钟）", f_follow_ups_due: "应随访", f_follow_ups_on_time: "按时随访",
      f_follow_ups_on_time_share: "按时随访率", f_out_of_consortium: "转出医联体",
      c_flow: "上转与下转", c_rates: "接收率与就诊占比", c_accept: "接收用时（分钟）", c_rejections: "拒收原因",
      c_waitlist: "候床", c_follow: "下转随访", c_leaks: "流失患者（按成员与原因，全年）", c_beds: "床位（各成员合计）",
      c_green: "绿色通道：各时段中位数与目标（分钟）", c_appraisal: "各成员达标月数与未达标月数",
      r_no_bed: "无床位", r_no_specialist_on_duty: "无专科医生值班", r_beyond_capability: "超出诊疗能力",
      r_incomplete_information: "资料不全", r_patient_declined: "患者拒绝", r_other: "其他",
      l_no_free_capacity: "满床", l_stale_census: "床位数据过期", l_only_parent_specialty: "仅有上级科目",
      l_previously_declined: "已拒收", l_no_member_offers: "无成员可接收",
      specialty: "专科", institution: "成员单位", reason: "原因", days: "天数", patients: "患者数",
      summary: "说明", kind: "类型", beds: "床位", slots: "门诊号源", total: "总数", occupied: "占用", held: "预留",
      free: "空闲", overflow: "超额", stale: "过期", as_of: "数据时间", yes: "是", pathway: "路径",
      hospital: "医院", referrals: "转诊数", interval: "时段", median: "中位数", p90: "P90", target_minutes: "目标（分钟）",
      met_share: "达标率", target: "考核指标", months_met: "达标月数", months_missed: "未达标月数",
      met: "达标", missed: "未达标", example_targets: "示例指标（app/data/targets.json），请由医联体管理办公室替换。",
      more_rows: "共 {n} 行，此处显示前 {k} 行；完整数据请下载 CSV。", lang_switch: "English"
    },
    en: {
      title: "Consortium council console", signin_title: "Sign in", signin: "Sign in", signout: "Sign out",
      key_label: "API key (council, insurer or admin)",
      signin_hint: "The key stays in this tab only (sessionStorage) and is gone when the tab closes.",
      refused_role: "This key may not use the console: a council, insurer or admin key is needed.",
      refused_key: "The key is not valid or has been revoked.", failed: "Request failed", loading: "Loading…",
      loaded: "Updated", consortium: "Consortium", year: "Year", member: "Member", reload: "Reload",
      csv: "Download CSV", all_members: "All members (total)", monthly_title: "Monthly referral figures",
      leaks_title: "Leaks and waits",
      leaks_hint: "From the stored routing decisions: when a patient left the consortium or waited, which members could not take them and why.",
      beds_title: "Bed board", green_title: "Green channel times", appraisal_title: "Appraisal scorecard",
      beds_insurer: "The bed board is for the council and admins.",
      no_data: "No data", month: "Month", role_council: "council", role_insurer: "insurer", role_admin: "admin",
      f_up_sent: "Up sent", f_up_received: "Up received", f_down_sent: "Down sent", f_down_received: "Down received",
      f_accepted: "Accepted", f_acceptance_rate: "Acceptance rate", f_accept_minutes_median: "Minutes to accept (median)",
      f_accept_minutes_p90: "Minutes to accept (p90)", f_rejected: "Rejected", f_up_treated_in_consortium_share: "Treated in consortium",
      f_up_treated_in_county_share: "Treated in county", f_waitlisted: "Waitlisted", f_waitlist_placed: "Placed from waitlist",
      f_waitlist_minutes_median: "Minutes waited (median)", f_follow_ups_due: "Follow-ups due", f_follow_ups_on_time: "On time",
      f_follow_ups_on_time_share: "Follow-ups on time", f_out_of_consortium: "Out of consortium",
      c_flow: "Up and down", c_rates: "Acceptance and shares", c_accept: "Time to accept (minutes)", c_rejections: "Rejection reasons",
      c_waitlist: "Waitlist", c_follow: "Follow-ups after down-referral", c_leaks: "Patients lost or waiting (by member and reason, year)",
      c_beds: "Beds (per member)", c_green: "Green channel: median per interval against target (minutes)",
      c_appraisal: "Months met and missed per member",
      r_no_bed: "No bed", r_no_specialist_on_duty: "No specialist on duty", r_beyond_capability: "Beyond capability",
      r_incomplete_information: "Incomplete information", r_patient_declined: "Patient declined", r_other: "Other",
      l_no_free_capacity: "Full", l_stale_census: "Stale census", l_only_parent_specialty: "Only parent subject",
      l_previously_declined: "Declined", l_no_member_offers: "No member offers it",
      specialty: "Specialty", institution: "Member", reason: "Reason", days: "Days", patients: "Patients",
      summary: "In words", kind: "Kind", beds: "beds", slots: "slots", total: "Total", occupied: "Occupied", held: "Held",
      free: "Free", overflow: "Overflow", stale: "Stale", as_of: "As of", yes: "yes", pathway: "Pathway",
      hospital: "Hospital", referrals: "Referrals", interval: "Interval", median: "Median", p90: "P90",
      target_minutes: "Target (min)", met_share: "Met", target: "Target", months_met: "Months met",
      months_missed: "Months missed", met: "met", missed: "missed",
      example_targets: "Example targets (app/data/targets.json): the council replaces them.",
      more_rows: "{n} rows, the first {k} shown; download the CSV for all.", lang_switch: "中文"
    }
  };

  var key = null;
  var lang = "zh";
  var me = null;
  var names = {};      // institution id -> {code, name}
  var data = {};       // the last answers, re-rendered on a language switch
  var charts = {};
  var loads = 0;       // finished loads, for whoever waits on the page

  try {
    key = window.sessionStorage.getItem(KEY_SLOT);
    lang = window.sessionStorage.getItem(LANG_SLOT) || "zh";
  } catch (e) { key = null; }

  function t(k) { return (T[lang] && T[lang][k]) || T.zh[k] || k; }
  function $(id) { return document.getElementById(id); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function pct(v) { return v === null || v === undefined ? "–" : (Math.round(v * 1000) / 10) + "%"; }
  function num(v) { return v === null || v === undefined ? "–" : String(v); }
  function nameOf(id) { var n = names[id]; return n ? n.name : (id || "–"); }

  function url(path, params) {
    var u = new URL(path, document.baseURI);
    Object.keys(params || {}).forEach(function (k) {
      if (params[k] !== null && params[k] !== undefined && params[k] !== "") { u.searchParams.set(k, params[k]); }
    });
    return u;
  }

  function call(path, params, accept) {
    return window.fetch(url(path, params), {
      headers: { "Authorization": "Bearer " + key, "Accept": accept || "application/json" },
      cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer"
    }).then(function (r) {
      if (!r.ok) {
        var err = new Error(t("failed") + " (" + r.status + ")");
        err.status = r.status;
        throw err;
      }
      return accept === "text/csv" ? r.blob() : r.json();
    });
  }

  // --- language -------------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    $("lang").textContent = t("lang_switch");
    if (me) { showWho(); fillMembers(); renderAll(); }
  }

  // --- sign in --------------------------------------------------------------------------

  function signOut(message) {
    key = null; me = null; data = {};
    try { window.sessionStorage.removeItem(KEY_SLOT); } catch (e) { /* nothing kept */ }
    Object.keys(charts).forEach(function (k) { charts[k].dispose(); });
    charts = {};
    $("console").hidden = true;
    $("signin").hidden = false;
    $("signout").hidden = true;
    $("who").textContent = "";
    $("signin-error").textContent = message || "";
  }

  function showWho() {
    var c = data.consortia ? data.consortia.filter(function (x) { return x.id === me.consortium_id; })[0] : null;
    $("who").textContent = t("role_" + me.role) + (c ? " · " + c.name : "");
  }

  function signIn(candidate) {
    key = candidate;
    $("signin-error").textContent = "";
    return call("v1/me").then(function (who) {
      if (["council", "insurer", "admin"].indexOf(who.role) < 0) {
        signOut(t("refused_role"));
        return;
      }
      me = who;
      try { window.sessionStorage.setItem(KEY_SLOT, key); } catch (e) { /* memory only */ }
      $("signin").hidden = true;
      $("console").hidden = false;
      $("signout").hidden = false;
      return start();
    }).catch(function (err) {
      signOut(err.status === 401 ? t("refused_key") : (err.status === 403 ? t("refused_role") : err.message));
    });
  }

  // --- loading --------------------------------------------------------------------------

  function localYear() {
    return Number(new Intl.DateTimeFormat("en-CA", { timeZone: ZONE, year: "numeric" }).format(new Date()));
  }

  function start() {
    $("year").value = $("year").value || String(localYear());
    return call("v1/consortia", { limit: 200 }).then(function (page) {
      data.consortia = page.items;
      var select = $("consortium");
      clear(select);
      page.items.forEach(function (c) {
        if (me.role === "council" && c.id !== me.consortium_id) { return; }
        var o = el("option", c.name + " (" + c.code + ")");
        o.value = c.id;
        select.appendChild(o);
      });
      select.disabled = me.role === "council";
      showWho();
      return load();
    });
  }

  function consortiumId() { return $("consortium").value; }
  function year() { return Number($("year").value) || localYear(); }
  function period() { return { from: year() + "-01-01", to: (year() + 1) + "-01-01" }; }

  var current = 0;     // the latest load: an older one finishing late changes nothing

  function load() {
    var mine = current += 1;
    var got = {};
    var cid = consortiumId();
    var p = period();
    var base = { from: p.from, to: p.to, consortium: cid };
    $("status").textContent = t("loading");
    var jobs = [
      call("v1/institutions", { consortium: cid, limit: 200 }).then(function (page) {
        got.names = {};
        page.items.forEach(function (i) { got.names[i.id] = { code: i.code, name: i.name }; });
        got.members = page.items.filter(function (i) { return i.consortium_id === cid; });
      }),
      call("v1/reports/referrals", Object.assign({ group_by: "month" }, base)).then(function (rows) { got.byMonth = rows; }),
      call("v1/reports/referrals", Object.assign({ group_by: "institution" }, base)).then(function (rows) { got.byMember = rows; }),
      call("v1/reports/leaks", base).then(function (rows) { got.leaks = rows; }),
      call("v1/reports/green-channel", base).then(function (rows) { got.green = rows; }),
      call("v1/reports/appraisal", { year: year(), consortium: cid }).then(function (card) { got.appraisal = card; })
    ];
    if (me.role !== "insurer") {
      jobs.push(call("v1/consortia/" + encodeURIComponent(cid) + "/bed-board").then(function (b) { got.beds = b; }));
    } else {
      got.beds = null;
    }
    return Promise.all(jobs).then(function () {
      if (mine !== current) { return; }
      names = got.names;
      delete got.names;
      Object.assign(data, got);
      fillMembers();
      renderAll();
      $("status").textContent = t("loaded") + " " + new Date().toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB");
      loads += 1;
      document.body.setAttribute("data-loads", String(loads));
    }).catch(function (err) {
      if (mine !== current) { return; }
      if (err.status === 401) { signOut(t("refused_key")); return; }
      if (err.status === 403) { signOut(t("refused_role")); return; }
      $("status").textContent = err.message;
    });
  }

  function fillMembers() {
    var select = $("member");
    var chosen = select.value;
    clear(select);
    var all = el("option", t("all_members"));
    all.value = "";
    select.appendChild(all);
    (data.members || []).slice().sort(function (a, b) { return a.code < b.code ? -1 : 1; }).forEach(function (m) {
      var o = el("option", m.name + " (" + m.code + ")");
      o.value = m.id;
      select.appendChild(o);
    });
    select.value = chosen && names[chosen] ? chosen : "";
  }

  // --- charts ---------------------------------------------------------------------------

  function months() {
    var out = [];
    for (var m = 1; m <= 12; m += 1) { out.push(year() + "-" + (m < 10 ? "0" : "") + m); }
    return out;
  }

  function tooltip(params) {
    var list = Array.isArray(params) ? params : [params];
    var head = list.length ? esc(list[0].axisValueLabel || list[0].name) : "";
    return head + list.map(function (p) {
      var v = Array.isArray(p.value) ? p.value[p.value.length - 1] : p.value;
      return "<br>" + esc(p.seriesName) + ": " + esc(v === null || v === undefined ? "–" : v);
    }).join("");
  }

  function draw(id, option) {
    var node = $(id);
    if (!window.echarts) { return; }
    var chart = charts[id];
    if (!chart) { chart = charts[id] = window.echarts.init(node, null, { renderer: "canvas" }); }
    option.tooltip = Object.assign({ trigger: "axis", formatter: tooltip, confine: true }, option.tooltip || {});
    option.grid = option.grid || { left: 50, right: 20, top: 50, bottom: 30 };
    option.legend = Object.assign({ top: 22, type: "scroll" }, option.legend || {});
    chart.setOption(option, true);
  }

  function title(text) { return { text: text, left: 0, top: 0, textStyle: { fontSize: 13 } }; }

  function series(rows, field, type, extra) {
    var byMonth = {};
    rows.forEach(function (r) { byMonth[r.month] = r; });
    return Object.assign({
      name: t("f_" + field), type: type, id: field,
      data: months().map(function (m) { return byMonth[m] ? byMonth[m][field] : null; })
    }, extra || {});
  }

  function selectedRows() {
    var member = $("member").value;
    if (!member) { return data.byMonth || []; }
    return (data.byMember || []).filter(function (r) { return r.key === member; });
  }

  var TABLE_FIELDS = ["up_sent", "up_received", "down_sent", "down_received", "accepted", "acceptance_rate",
    "accept_minutes_median", "accept_minutes_p90", "rejected", "out_of_consortium", "up_treated_in_consortium_share",
    "up_treated_in_county_share", "waitlisted", "waitlist_placed", "follow_ups_due", "follow_ups_on_time",
    "follow_ups_on_time_share"];
  var SHARES = { acceptance_rate: 1, up_treated_in_consortium_share: 1, up_treated_in_county_share: 1, follow_ups_on_time_share: 1 };

  function renderMonthly() {
    var rows = selectedRows();
    var x = { type: "category", data: months().map(function (m) { return m.slice(5); }) };
    var percent = { type: "value", min: 0, max: 1, axisLabel: { formatter: function (v) { return Math.round(v * 100) + "%"; } } };
    draw("chart-flow", { title: title(t("c_flow")), xAxis: x, yAxis: { type: "value" },
      series: ["up_sent", "up_received", "down_sent", "down_received"].map(function (f) { return series(rows, f, "bar"); }) });
    draw("chart-rates", { title: title(t("c_rates")), xAxis: x, yAxis: percent,
      series: ["acceptance_rate", "up_treated_in_consortium_share", "up_treated_in_county_share"].map(function (f) {
        return series(rows, f, "line", { connectNulls: false });
      }) });
    draw("chart-accept", { title: title(t("c_accept")), xAxis: x, yAxis: { type: "value" },
      series: ["accept_minutes_median", "accept_minutes_p90"].map(function (f) { return series(rows, f, "line"); }) });
    var byMonth = {};
    rows.forEach(function (r) { byMonth[r.month] = r; });
    draw("chart-rejections", { title: title(t("c_rejections")), xAxis: x, yAxis: { type: "value" },
      series: REASONS.map(function (reason) {
        return { name: t("r_" + reason), type: "bar", stack: "r", id: "rejections_" + reason,
          data: months().map(function (m) { return byMonth[m] && byMonth[m].rejections ? (byMonth[m].rejections[reason] || 0) : null; }) };
      }) });
    draw("chart-waitlist", { title: title(t("c_waitlist")), xAxis: x, yAxis: { type: "value" },
      series: [series(rows, "waitlisted", "bar"), series(rows, "waitlist_placed", "bar"), series(rows, "out_of_consortium", "bar")] });
    draw("chart-follow", { title: title(t("c_follow")), xAxis: x, grid: { left: 50, right: 50, top: 50, bottom: 30 },
      yAxis: [{ type: "value" }, percent],
      series: [series(rows, "follow_ups_due", "bar"), series(rows, "follow_ups_on_time", "bar"),
        series(rows, "follow_ups_on_time_share", "line", { yAxisIndex: 1 })] });
    var table = $("table-monthly");
    clear(table);
    var head = el("tr");
    head.appendChild(el("th", t("month"), "text"));
    TABLE_FIELDS.forEach(function (f) { head.appendChild(el("th", t("f_" + f))); });
    table.appendChild(head);
    months().forEach(function (m) {
      var r = byMonth[m];
      var tr = el("tr");
      tr.setAttribute("data-month", m);
      tr.appendChild(el("td", m, "text"));
      TABLE_FIELDS.forEach(function (f) {
        var v = r ? r[f] : null;
        var td = el("td", SHARES[f] ? pct(v) : num(v));
        td.setAttribute("data-field", f);
        td.setAttribute("data-value", v === null || v === undefined ? "" : String(v));
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
  }

  var LEAK_ROWS_SHOWN = 40;

  function renderLeaks() {
    var rows = data.leaks || [];
    var totals = {};
    rows.forEach(function (r) {
      var who = r.institution_id ? nameOf(r.institution_id) : "—";
      var k = who + " · " + t("l_" + r.reason);
      totals[k] = (totals[k] || 0) + r.referrals;
    });
    var top = Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a]; }).slice(0, 12).reverse();
    draw("chart-leaks", { title: title(t("c_leaks")), grid: { left: 220, right: 30, top: 40, bottom: 20 },
      tooltip: { trigger: "item" }, legend: { show: false },
      xAxis: { type: "value" }, yAxis: { type: "category", data: top },
      series: [{ name: t("patients"), type: "bar", id: "leaks", data: top.map(function (k) { return totals[k]; }) }] });
    var table = $("table-leaks");
    clear(table);
    var head = el("tr");
    [["month", "text"], ["specialty", "text"], ["institution", "text"], ["reason", "text"], ["days"], ["patients"], ["summary", "text"]]
      .forEach(function (h) { head.appendChild(el("th", t(h[0]), h[1])); });
    table.appendChild(head);
    var sorted = rows.slice().sort(function (a, b) { return b.referrals - a.referrals || (a.month < b.month ? -1 : 1); });
    sorted.slice(0, LEAK_ROWS_SHOWN).forEach(function (r) {
      var tr = el("tr");
      tr.appendChild(el("td", r.month, "text"));
      tr.appendChild(el("td", (lang === "zh" ? r.specialty_name : r.specialty_name_en) || r.specialty_code, "text"));
      tr.appendChild(el("td", r.institution_name || "—", "text"));
      tr.appendChild(el("td", t("l_" + r.reason), "text"));
      var d = el("td", r.days); d.setAttribute("data-field", "days"); tr.appendChild(d);
      var p = el("td", r.referrals); p.setAttribute("data-field", "referrals"); tr.appendChild(p);
      tr.appendChild(el("td", lang === "zh" ? r.summary_zh : r.summary, "text"));
      tr.setAttribute("data-key", [r.month, r.specialty_code, r.institution_id || "", r.reason].join("|"));
      table.appendChild(tr);
    });
    $("leaks-more").textContent = rows.length > LEAK_ROWS_SHOWN
      ? t("more_rows").replace("{n}", rows.length).replace("{k}", LEAK_ROWS_SHOWN) : (rows.length ? "" : t("no_data"));
  }

  function renderBeds() {
    var panelNote = $("beds-note");
    var table = $("table-beds");
    clear(table);
    if (!data.beds) {
      panelNote.textContent = t("beds_insurer");
      if (charts["chart-beds"]) { charts["chart-beds"].clear(); }
      return;
    }
    panelNote.textContent = data.beds.day ? (t("slots") + ": " + data.beds.day) : "";
    var items = data.beds.items;
    var head = el("tr");
    [["institution", "text"], ["kind", "text"], ["specialty", "text"], ["total"], ["occupied"], ["held"], ["free"], ["overflow"], ["stale"], ["as_of", "text"]]
      .forEach(function (h) { head.appendChild(el("th", t(h[0]), h[1])); });
    table.appendChild(head);
    var perMember = {};
    items.forEach(function (i) {
      var tr = el("tr");
      tr.setAttribute("data-key", [i.institution_code, i.kind, i.specialty_code].join("|"));
      tr.appendChild(el("td", i.institution_name, "text"));
      tr.appendChild(el("td", t(i.kind), "text"));
      tr.appendChild(el("td", i.specialty_code, "text"));
      ["total", "occupied", "held", "free", "overflow"].forEach(function (f) {
        var td = el("td", i[f], f === "overflow" && i[f] > 0 ? "over" : "");
        td.setAttribute("data-field", f);
        tr.appendChild(td);
      });
      var st = el("td", i.stale ? t("yes") : "", i.stale ? "stale" : "");
      st.setAttribute("data-field", "stale");
      st.setAttribute("data-value", String(i.stale));
      tr.appendChild(st);
      tr.appendChild(el("td", i.as_of ? new Date(i.as_of).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: ZONE }) : "–", "text"));
      table.appendChild(tr);
      if (i.kind === "beds") {
        var m = perMember[i.institution_name] = perMember[i.institution_name] || { free: 0, held: 0, occupied: 0, overflow: 0 };
        m.free += i.free; m.held += i.held; m.occupied += i.occupied; m.overflow += i.overflow;
      }
    });
    var who = Object.keys(perMember);
    draw("chart-beds", { title: title(t("c_beds")), xAxis: { type: "category", data: who }, yAxis: { type: "value" },
      series: ["free", "held", "occupied", "overflow"].map(function (f) {
        return { name: t(f), type: "bar", stack: "b", id: "beds_" + f, data: who.map(function (w) { return perMember[w][f]; }) };
      }) });
  }

  function renderGreen() {
    var rows = data.green || [];
    var table = $("table-green");
    clear(table);
    var head = el("tr");
    [["pathway", "text"], ["hospital", "text"], ["month", "text"], ["referrals"], ["overflow"], ["interval", "text"],
      ["median"], ["p90"], ["target_minutes"], ["met_share"]].forEach(function (h) { head.appendChild(el("th", t(h[0]), h[1])); });
    table.appendChild(head);
    var medians = {};
    rows.forEach(function (r) {
      (r.intervals.length ? r.intervals : [null]).forEach(function (iv) {
        var tr = el("tr");
        tr.setAttribute("data-key", [r.pathway, r.institution_id || "", r.month, iv ? iv.target : ""].join("|"));
        tr.appendChild(el("td", r.pathway, "text"));
        tr.appendChild(el("td", nameOf(r.institution_id), "text"));
        tr.appendChild(el("td", r.month, "text"));
        tr.appendChild(el("td", r.referrals));
        tr.appendChild(el("td", r.overflow, r.overflow ? "over" : ""));
        tr.appendChild(el("td", iv ? iv.target : "–", "text"));
        ["median_minutes", "p90_minutes", "target_minutes"].forEach(function (f) {
          var td = el("td", iv ? num(iv[f]) : "–");
          td.setAttribute("data-field", f);
          tr.appendChild(td);
        });
        var ms = el("td", iv ? pct(iv.met_share) : "–");
        ms.setAttribute("data-field", "met_share");
        tr.appendChild(ms);
        table.appendChild(tr);
        if (iv && iv.median_minutes !== null) {
          var k = r.pathway + " · " + iv.target;
          medians[k] = medians[k] || { median: iv.median_minutes, target: iv.target_minutes };
        }
      });
    });
    var ks = Object.keys(medians);
    draw("chart-green", { title: title(t("c_green")), xAxis: { type: "category", data: ks }, yAxis: { type: "value" },
      series: [
        { name: t("median"), type: "bar", id: "green_median", data: ks.map(function (k) { return medians[k].median; }) },
        { name: t("target_minutes"), type: "scatter", id: "green_target", symbolSize: 14, data: ks.map(function (k) { return medians[k].target; }) }
      ] });
  }

  function renderAppraisal() {
    var card = data.appraisal;
    var table = $("table-appraisal");
    clear(table);
    if (!card) { return; }
    $("appraisal-note").textContent = card.targets_are_example ? t("example_targets") : "";
    var targetNames = {};
    card.targets.forEach(function (x) { targetNames[x.code] = lang === "zh" ? x.name_zh : x.name; });
    var head = el("tr");
    head.appendChild(el("th", t("institution"), "text"));
    head.appendChild(el("th", t("target"), "text"));
    months().forEach(function (m) { head.appendChild(el("th", m.slice(5))); });
    head.appendChild(el("th", t("months_met")));
    head.appendChild(el("th", t("months_missed")));
    table.appendChild(head);
    card.members.forEach(function (m) {
      m.targets.forEach(function (x) {
        if (!x.months_measured) { return; }
        var tr = el("tr");
        tr.setAttribute("data-key", m.institution_id + "|" + x.code);
        tr.appendChild(el("td", m.name, "text"));
        tr.appendChild(el("td", targetNames[x.code] || x.code, "text"));
        x.months.forEach(function (mo) {
          var mark = mo.met === null ? "–" : (mo.met ? "✓" : "✗");
          var td = el("td", mark, mo.met === null ? "none" : (mo.met ? "met" : "missed"));
          td.title = mo.value === null ? "" : pct(mo.value) + " ≥ " + pct(mo.min);
          td.setAttribute("data-month", mo.month);
          td.setAttribute("data-met", mo.met === null ? "" : String(mo.met));
          tr.appendChild(td);
        });
        var a = el("td", x.months_met); a.setAttribute("data-field", "months_met"); tr.appendChild(a);
        var b = el("td", x.months_missed); b.setAttribute("data-field", "months_missed"); tr.appendChild(b);
        table.appendChild(tr);
      });
    });
    var who = card.members.filter(function (m) { return m.months_met + m.months_missed > 0; });
    draw("chart-appraisal", { title: title(t("c_appraisal")), xAxis: { type: "category", data: who.map(function (m) { return m.name; }) },
      yAxis: { type: "value" },
      series: [
        { name: t("months_met"), type: "bar", stack: "a", id: "months_met", data: who.map(function (m) { return m.months_met; }) },
        { name: t("months_missed"), type: "bar", stack: "a", id: "months_missed", data: who.map(function (m) { return m.months_missed; }) }
      ] });
  }

  function renderAll() {
    if (!data.byMonth) { return; }
    renderMonthly();
    renderLeaks();
    renderBeds();
    renderGreen();
    renderAppraisal();
  }

  // --- CSV downloads: fetched with the key, handed to the browser as a blob -------------------

  function download(kind) {
    var cid = consortiumId();
    var p = period();
    var req = {
      referrals: ["v1/reports/referrals", { from: p.from, to: p.to, consortium: cid, group_by: "institution" }, "referrals"],
      leaks: ["v1/reports/leaks", { from: p.from, to: p.to, consortium: cid }, "leaks"],
      beds: ["v1/consortia/" + encodeURIComponent(cid) + "/bed-board", {}, "bed-board"],
      appraisal: ["v1/reports/appraisal", { year: year(), consortium: cid }, "appraisal"]
    }[kind];
    if (!req || (kind === "beds" && !data.beds)) { return; }
    call(req[0], req[1], "text/csv").then(function (blob) {
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = req[2] + "-" + year() + ".csv";
      document.body.appendChild(a);
      a.click();
      window.setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }).catch(function (err) { $("status").textContent = err.message; });
  }

  // --- wiring ---------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", function () {
    applyLanguage();
    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = $("key").value.trim();
      $("key").value = "";
      if (value) { signIn(value); }
    });
    $("signout").addEventListener("click", function () { signOut(""); });
    $("lang").addEventListener("click", function () {
      lang = lang === "zh" ? "en" : "zh";
      try { window.sessionStorage.setItem(LANG_SLOT, lang); } catch (e) { /* memory only */ }
      applyLanguage();
    });
    $("reload").addEventListener("click", function () { if (me) { load(); } });
    $("consortium").addEventListener("change", function () { if (me) { load(); } });
    $("year").addEventListener("change", function () { if (me) { load(); } });
    $("member").addEventListener("change", function () { if (data.byMonth) { renderMonthly(); } });
    Array.prototype.forEach.call(document.querySelectorAll("button.csv"), function (b) {
      b.addEventListener("click", function () { download(b.getAttribute("data-csv")); });
    });
    window.addEventListener("resize", function () { Object.keys(charts).forEach(function (k) { charts[k].resize(); }); });
    if (key) { signIn(key); }
  });
}());
