/* leadbot sandbox page: plays the users through the emulator's control API and shows what the bot
   does, live, from the emulator's event stream (server-sent events at /control/events).

   Safety: every text from the bot or a user is put into the page with textContent / DOM nodes built
   from the message's entities; nothing is ever assigned to innerHTML. Links only keep safe schemes. */
"use strict";

(() => {
  // ---------------------------------------------------------------- state

  const state = {
    config: null,
    chats: new Map(),        // chat_id -> Chat
    prospectId: null,        // the prospect shown in the prospect pane
    managerId: null,         // who the user acts as in the staff group
    unread: new Map(),       // prospect id -> count
    source: null,            // EventSource
    lastSeq: 0,
    syncing: null,
    retry: 1000,
    commands: null,          // cached /control/commands
    pendingQueries: new Map(), // callback_query_id -> button element
  };

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---------------------------------------------------------------- HTTP

  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let payload = null;
    try { payload = await response.json(); } catch (_) { /* empty body */ }
    if (!response.ok) {
      const error = new Error((payload && (payload.error || payload.description)) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return payload;
  }
  const get = (path) => api("GET", path);
  const post = (path, body) => api("POST", path, body || {});

  // ---------------------------------------------------------------- people

  const fullName = (user) => [user.first_name, user.last_name].filter(Boolean).join(" ") || `User ${user.id}`;
  const initials = (text) => (text || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => Array.from(w)[0]).join("").toUpperCase();

  function userObject(person) {
    const user = { id: person.id, is_bot: false, first_name: person.first_name };
    for (const key of ["last_name", "username", "language_code"]) if (person[key]) user[key] = person[key];
    return user;
  }
  const prospect = (id) => (state.config.prospects || []).find((p) => p.id === id);
  const manager = (id) => (state.config.managers || []).find((m) => m.id === id);

  function paneOf(chatId) {
    const cfg = state.config;
    if (!cfg) return null;
    if (chatId === cfg.staff.id) return "staff";
    if (chatId === cfg.admin.id) return "admin";
    if (prospect(chatId)) return "prospect";
    return null;
  }

  function actorFor(chatId) {
    const pane = paneOf(chatId);
    if (pane === "staff") return userObject(manager(state.managerId) || state.config.managers[0]);
    if (pane === "admin") return userObject(state.config.admin);
    return userObject(prospect(chatId));
  }

  // ---------------------------------------------------------------- a chat (one messages list + composer)

  class Chat {
    constructor(chatId, pane) {
      this.id = chatId;
      this.pane = pane;
      this.messages = new Map();  // message_id -> message
      this.keyboard = null;       // the current reply keyboard (ReplyKeyboardMarkup) or null
      this.keyboardHidden = false;
      this.replyTo = null;        // staff group: the message being replied to
      this.typingTimer = null;
      this.root = el("div", { class: "chat", dataset: { chatId: String(chatId) } });
      this.root.append(document.getElementById("chat-template").content.cloneNode(true));
      this.list = $("[data-role=messages]", this.root);
      this.input = $("[data-role=input]", this.root);
      this.input.setAttribute("data-testid", `input-${pane}`);
      this.kbdArea = $("[data-role=reply-kbd]", this.root);
      this.kbdArea.setAttribute("data-testid", `reply-keyboard-${pane}`);
      this.kbdButton = $("[data-role=kbd-btn]", this.root);
      this.cmdMenu = $("[data-role=cmd-menu]", this.root);
      this.toast = $("[data-role=toast]", this.root);
      this.replyBar = $("[data-role=reply-bar]", this.root);
      $("[data-role=composer]", this.root).addEventListener("submit", (event) => {
        event.preventDefault();
        this.sendInput();
      });
      $("[data-role=send]", this.root).setAttribute("data-testid", `send-${pane}`);
      this.kbdButton.addEventListener("click", () => {
        this.keyboardHidden = !this.keyboardHidden;
        this.renderKeyboard();
      });
      $("[data-role=cmd-btn]", this.root).addEventListener("click", () => this.toggleCommands());
      $("[data-role=reply-cancel]", this.root).addEventListener("click", () => this.setReply(null));
      this.renderEmpty();
    }

    // ---- sending

    async act(path, body) {
      try {
        return await post(path, body);
      } catch (error) {
        this.showToast(`⚠️ ${error.message}`);
        throw error;
      }
    }

    async sendText(text) {
      const body = { user: actorFor(this.id), text };
      if (this.pane !== "prospect") body.chat_id = this.id;
      if (this.replyTo) body.reply_to_message_id = this.replyTo;
      this.setReply(null);
      this.scrollSoon(true);
      return this.act("/control/message", body);
    }

    async sendInput() {
      const text = this.input.value.trim();
      if (!text) return;
      this.input.value = "";
      this.cmdMenu.hidden = true;
      await this.sendText(text);
    }

    async shareContact() {
      const person = prospect(this.id) || state.config.admin;
      const contact = { phone_number: person.phone || "+12025550100", first_name: person.first_name, user_id: person.id };
      if (person.last_name) contact.last_name = person.last_name;
      this.scrollSoon(true);
      return this.act("/control/message", { user: actorFor(this.id), chat_id: this.pane === "prospect" ? undefined : this.id, contact });
    }

    async press(message, button, node) {
      node.classList.add("pending");
      try {
        const result = await this.act("/control/callback", {
          user: actorFor(this.id), chat_id: this.id, message_id: message.message_id, data: button.callback_data,
        });
        state.pendingQueries.set(result.callback_query_id, node);
        setTimeout(() => node.classList.remove("pending"), 8000);
      } catch (_) {
        node.classList.remove("pending");
      }
    }

    // ---- the staff group: replying to a card

    setReply(messageId) {
      $$(".msg.replying", this.list).forEach((n) => n.classList.remove("replying"));
      this.replyTo = messageId;
      this.input.placeholder = messageId ? "Reply (goes to the prospect if this is a lead card)" : "Message";
      if (!messageId) {
        this.replyBar.hidden = true;
        return;
      }
      const message = this.messages.get(messageId);
      $("[data-role=reply-text]", this.root).textContent = message ? snippet(message) : `#${messageId}`;
      this.replyBar.hidden = false;
      const node = this.nodeOf(messageId);
      if (node) node.classList.add("replying");
      this.input.focus();
    }

    // ---- commands menu (setMyCommands, as Telegram's "/" menu shows them)

    async toggleCommands() {
      if (!this.cmdMenu.hidden) {
        this.cmdMenu.hidden = true;
        return;
      }
      this.cmdMenu.replaceChildren(el("div", { class: "cmd-none", text: "loading…" }));
      this.cmdMenu.hidden = false;
      try {
        state.commands = await get("/control/commands");
      } catch (_) { state.commands = state.commands || []; }
      const commands = commandsFor(this.id, actorFor(this.id).language_code);
      this.cmdMenu.replaceChildren(...(commands.length ? commands.map((c) => el("button", {
        type: "button", class: "cmd-item",
        onclick: () => { this.cmdMenu.hidden = true; this.sendText(`/${c.command}`); },
      }, el("b", { text: `/${c.command}` }), el("span", { text: c.description }))) : [el("div", { class: "cmd-none", text: "The bot set no commands here (yet)." })]));
    }

    // ---- rendering

    nodeOf(messageId) {
      return this.list.querySelector(`.msg[data-mid="${messageId}"]`);
    }

    renderEmpty() {
      const has = this.messages.size > 0;
      const existing = $(".empty", this.list);
      if (has) { if (existing) existing.remove(); return; }
      if (existing) return;
      let hint;
      if (this.pane === "prospect") {
        hint = el("div", { class: "empty" },
          el("div", { text: "A new prospect opens the bot, as if from a link or an ad." }),
          el("div", {}, "Try ", this.chip("/start"), " or a deep link from an ad, ", this.chip("/start ads_fb"), "."),
          el("button", { type: "button", class: "btn btn-primary", "data-testid": "start-button", onclick: () => this.sendText("/start") }, "START"));
      } else if (this.pane === "staff") {
        hint = el("div", { class: "empty" },
          el("div", { text: "Lead cards appear here when a prospect qualifies or asks for a manager." }),
          el("div", { text: "Press the card's buttons as the manager chosen above; reply to a card to write to the prospect." }));
      } else {
        hint = el("div", { class: "empty" },
          el("div", { text: "Ask the bot for figures:" }),
          el("div", {}, ["/stats", "/funnel", "/sources", "/dropoff", "/export"].map((c) => [this.chip(c), " "])));
      }
      this.list.append(hint);
    }

    chip(command) {
      return el("button", { type: "button", class: "chip", title: "send it", onclick: () => this.sendText(command) }, command);
    }

    clear() {
      this.messages.clear();
      this.keyboard = null;
      this.keyboardHidden = false;
      this.setReply(null);
      this.list.replaceChildren();
      this.renderKeyboard();
      this.renderEmpty();
      this.setTyping(false);
    }

    upsert(message, { animate = false } = {}) {
      if (message.deleted) return this.remove(message.message_id);
      const isNew = !this.messages.has(message.message_id);
      this.messages.set(message.message_id, message);
      const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 120;
      const node = renderMessage(this, message);
      const old = this.nodeOf(message.message_id);
      if (old) {
        old.replaceWith(node);
        if (!isNew) node.classList.add("flash");
      } else {
        // keep message_id order (events may replay)
        const after = $$(".msg", this.list).find((n) => Number(n.dataset.mid) > message.message_id);
        if (after) this.list.insertBefore(node, after); else this.list.append(node);
        if (animate) node.classList.add("appear");
      }
      if (this.replyTo === message.message_id) node.classList.add("replying");
      this.renderEmpty();
      if (isNew && (nearBottom || !message.from || !message.from.is_bot || animate)) this.scrollSoon(true);
      if (message.from && message.from.is_bot) this.setTyping(false);
      return isNew;
    }

    remove(messageId) {
      this.messages.delete(messageId);
      const node = this.nodeOf(messageId);
      if (node) node.remove();
      if (this.replyTo === messageId) this.setReply(null);
      this.renderEmpty();
    }

    applyMarkup(markup) {
      if (!markup) return;
      if (markup.keyboard) {
        this.keyboard = markup;
        this.keyboardHidden = false;
      } else if (markup.remove_keyboard) {
        this.keyboard = null;
      }
      this.renderKeyboard();
    }

    renderKeyboard() {
      const markup = this.keyboard;
      this.kbdButton.hidden = !markup;
      this.kbdButton.classList.toggle("active", Boolean(markup) && !this.keyboardHidden);
      this.input.placeholder = (markup && markup.input_field_placeholder) || (this.pane === "staff" && this.replyTo ? "Reply" : "Message");
      if (!markup || this.keyboardHidden) {
        this.kbdArea.hidden = true;
        this.kbdArea.replaceChildren();
        return;
      }
      const rows = (markup.keyboard || []).map((row) => el("div", { class: "rkb-row" }, row.map((raw) => {
        const button = typeof raw === "string" ? { text: raw } : raw;
        const contact = Boolean(button.request_contact);
        return el("button", {
          type: "button", class: contact ? "rkb contact" : "rkb", "data-testid": contact ? "share-contact" : "reply-button",
          onclick: () => {
            if (markup.one_time_keyboard) { this.keyboardHidden = true; this.renderKeyboard(); }
            if (contact) this.shareContact(); else this.sendText(button.text);
          },
        }, button.text);
      })));
      this.kbdArea.replaceChildren(...rows);
      this.kbdArea.hidden = false;
    }

    showToast(text, alert = false) {
      if (alert) {
        modal(text, [{ label: "OK", primary: true }]);
        return;
      }
      this.toast.textContent = text;
      this.toast.hidden = false;
      clearTimeout(this.toastTimer);
      this.toastTimer = setTimeout(() => { this.toast.hidden = true; }, 3500);
    }

    setTyping(on) {
      const pane = document.querySelector(`[data-pane="${this.pane}"]`);
      if (!pane || (this.pane === "prospect" && state.prospectId !== this.id)) return;
      const subtitle = $("[data-role=subtitle]", pane);
      clearTimeout(this.typingTimer);
      if (on) {
        subtitle.dataset.normal = subtitle.dataset.normal || subtitle.textContent;
        subtitle.textContent = `${state.config.bot.first_name} is typing…`;
        subtitle.classList.add("typing");
        this.typingTimer = setTimeout(() => this.setTyping(false), 5000);
      } else if (subtitle.classList.contains("typing")) {
        subtitle.textContent = subtitle.dataset.normal || "";
        subtitle.classList.remove("typing");
      }
    }

    scrollSoon(force) {
      requestAnimationFrame(() => {
        if (force) this.list.scrollTop = this.list.scrollHeight;
      });
    }
  }

  function commandsFor(chatId, language) {
    const sets = state.commands || [];
    const scopes = [
      (s) => s.type === "chat" && Number(s.chat_id) === chatId,
      (s) => s.type === (chatId < 0 ? "all_group_chats" : "all_private_chats"),
      (s) => s.type === "default",
    ];
    for (const matches of scopes) {
      const found = sets.filter((set) => matches(set.scope || { type: "default" }));
      const pick = found.find((set) => set.language_code === language) || found.find((set) => !set.language_code);
      if (pick && pick.commands.length) return pick.commands;
    }
    return [];
  }

  // ---------------------------------------------------------------- message rendering

  const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:", "tel:", "tg:"]);

  function safeUrl(raw) {
    try {
      const url = new URL(String(raw), window.location.href);
      return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function link(href, text) {
    const url = safeUrl(href);
    if (!url) return el("span", { text });
    return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text });
  }

  /** Text with Telegram entities as DOM nodes (offsets are UTF-16 code units, as JavaScript strings). */
  function formatted(text, entities, chat) {
    const root = el("span", { class: "text" });
    const list = (entities || []).filter((e) => e && e.length > 0)
      .map((e) => ({ ...e, end: e.offset + e.length }))
      .sort((a, b) => a.offset - b.offset || b.length - a.length);

    function build(parent, start, end, items) {
      let pos = start;
      let i = 0;
      while (i < items.length) {
        const entity = items[i];
        if (entity.offset < pos || entity.offset >= end) { i += 1; continue; }  // overlapping: ignore
        if (entity.offset > pos) parent.append(text.slice(pos, entity.offset));
        const stop = Math.min(entity.end, end);
        const inner = [];
        let j = i + 1;
        while (j < items.length && items[j].offset < stop) {
          if (items[j].end <= stop) inner.push(items[j]);
          j += 1;
        }
        const node = entityNode(entity, text.slice(entity.offset, stop), chat);
        build(node.firstElementChild && node.dataset.wrap ? node.firstElementChild : node, entity.offset, stop, inner);
        parent.append(node);
        pos = stop;
        i = j;
      }
      if (pos < end) parent.append(text.slice(pos, end));
    }
    build(root, 0, text.length, list);
    return root;
  }

  function entityNode(entity, content, chat) {
    switch (entity.type) {
      case "bold": return el("b");
      case "italic": return el("i");
      case "underline": return el("u");
      case "strikethrough": return el("s");
      case "spoiler": {
        const node = el("span", { class: "spoiler", title: "spoiler" });
        node.addEventListener("click", () => node.classList.add("shown"));
        return node;
      }
      case "code": return el("code");
      case "pre": {
        const pre = el("pre", { dataset: { wrap: "1" } }, el("code"));
        return pre;
      }
      case "blockquote":
      case "expandable_blockquote": return el("blockquote");
      case "text_link": {
        const url = safeUrl(entity.url);
        return url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", title: url }) : el("span");
      }
      case "url": {
        const href = /^[a-z][a-z0-9+.-]*:/i.test(content) ? content : `http://${content}`;
        const url = safeUrl(href);
        return url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }) : el("span");
      }
      case "email": return el("a", { href: `mailto:${content}` });
      case "phone_number": return el("a", { href: `tel:${content.replace(/[^+\d]/g, "")}` });
      case "bot_command": {
        const node = el("span", { class: "cmd", title: "send this command" });
        if (chat) node.addEventListener("click", () => chat.sendText(content.split("@")[0]));
        return node;
      }
      case "mention":
      case "hashtag":
      case "cashtag":
      case "text_mention": return el("span", { class: "mention" });
      default: return el("span");
    }
  }

  function snippet(message) {
    if (message.text) return message.text.replace(/\s+/g, " ").slice(0, 90);
    if (message.caption) return message.caption.replace(/\s+/g, " ").slice(0, 90);
    if (message.photo) return "🖼 Photo";
    if (message.document) return `📄 ${message.document.file_name || "Document"}`;
    if (message.contact) return `👤 ${message.contact.first_name} ${message.contact.phone_number}`;
    if (message.location) return "📍 Location";
    if (message.sticker) return `${message.sticker.emoji || ""} Sticker`;
    if (message.voice) return "🎤 Voice message";
    if (message.video) return "🎬 Video";
    return "Message";
  }

  function humanSize(bytes) {
    if (!bytes && bytes !== 0) return "";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const fileUrl = (fileId) => `/control/files/${encodeURIComponent(fileId)}`;

  function renderMessage(chat, message) {
    const fromBot = Boolean(message.from && message.from.is_bot);
    const node = el("div", {
      class: `msg ${fromBot ? "in bot" : "out user"}`,
      dataset: { mid: String(message.message_id), from: fromBot ? "bot" : "user" },
      "data-testid": "message",
    });
    const bubble = el("div", { class: "bubble" });
    if (chat.pane === "staff" && message.from) {
      bubble.append(el("div", { class: `sender${fromBot ? " bot" : ""}`, text: fromBot ? message.from.first_name : fullName(message.from) }));
    }
    if (message.forward_origin) {
      const origin = message.forward_origin;
      const who = origin.sender_user ? fullName(origin.sender_user) : (origin.sender_chat && origin.sender_chat.title) || "someone";
      bubble.append(el("div", { class: "forwarded", text: `Forwarded from ${who}` }));
    }
    if (message.reply_to_message) {
      const quoted = message.reply_to_message;
      const who = quoted.from ? (quoted.from.is_bot ? quoted.from.first_name : fullName(quoted.from)) : "";
      bubble.append(el("div", {
        class: "quote", title: "show the message",
        onclick: () => {
          const target = chat.nodeOf(quoted.message_id);
          if (target) { target.scrollIntoView({ behavior: "smooth", block: "center" }); target.classList.remove("flash"); void target.offsetWidth; target.classList.add("flash"); }
        },
      }, el("span", { class: "who", text: who }), el("span", { class: "what", text: snippet(quoted) })));
    }
    if (message.photo && message.photo.length) {
      const largest = message.photo[message.photo.length - 1];
      const img = el("img", { class: "photo", src: fileUrl(largest.file_id), alt: message.caption || "photo", loading: "lazy", "data-testid": "photo" });
      img.addEventListener("click", () => lightbox(img.src));
      bubble.append(img);
    }
    if (message.document) {
      const doc = message.document;
      const name = doc.file_name || "document";
      bubble.append(el("a", { class: "doc", href: fileUrl(doc.file_id), download: name, "data-testid": "document" },
        el("span", { class: "doc-icon", text: "⬇" }),
        el("span", {}, el("div", { class: "doc-name", text: name }), el("div", { class: "doc-size", text: `${humanSize(doc.file_size)} · download` }))));
    }
    for (const kind of ["video", "animation", "voice", "audio", "video_note"]) {
      if (message[kind]) {
        const media = message[kind];
        bubble.append(el("a", { class: "doc", href: fileUrl(media.file_id), download: media.file_name || kind },
          el("span", { class: "doc-icon", text: kind === "voice" ? "🎤" : "▶" }),
          el("span", {}, el("div", { class: "doc-name", text: media.file_name || kind.replace("_", " ") }), el("div", { class: "doc-size", text: humanSize(media.file_size) }))));
      }
    }
    if (message.sticker) bubble.append(el("div", { class: "sticker", text: message.sticker.emoji || "🖼" }));
    if (message.contact) {
      const c = message.contact;
      const name = [c.first_name, c.last_name].filter(Boolean).join(" ");
      bubble.append(el("div", { class: "contact-card", "data-testid": "contact" },
        el("div", { class: "avatar", text: initials(name) }),
        el("div", {}, el("div", { class: "doc-name", text: name }), el("div", { class: "doc-size", text: c.phone_number }))));
    }
    if (message.location) {
      const { latitude, longitude } = message.location;
      bubble.append(el("div", {}, "📍 ", link(`https://www.openstreetmap.org/?mlat=${latitude}&mlon=${longitude}`, `${latitude}, ${longitude}`)));
    }
    if (message.text !== undefined) bubble.append(formatted(message.text, message.entities, chat));
    if (message.caption) {
      const caption = formatted(message.caption, message.caption_entities, chat);
      caption.classList.add("caption");
      bubble.append(caption);
    }
    const meta = el("span", { class: "meta", text: `${message.edit_date ? "edited " : ""}${clock(message.date)}` });
    bubble.append(meta);
    node.append(bubble);

    const markup = message.reply_markup;
    if (markup && markup.inline_keyboard) {
      node.append(el("div", { class: "ikb-rows" }, markup.inline_keyboard.map((row) => el("div", { class: "ikb-row" }, row.map((button) => {
        if (button.url) {
          const url = safeUrl(button.url);
          return el("button", { type: "button", class: "ikb url", title: url || "", disabled: !url, onclick: () => url && window.open(url, "_blank", "noopener") }, button.text);
        }
        if (button.callback_data !== undefined) {
          const b = el("button", { type: "button", class: "ikb", "data-testid": "inline-button", title: button.text }, button.text);
          b.addEventListener("click", () => chat.press(message, button, b));
          return b;
        }
        return el("button", { type: "button", class: "ikb", disabled: true, title: "not supported in the sandbox" }, button.text);
      })))));
    }
    if (chat.pane === "staff") {
      node.append(el("button", {
        type: "button", class: "reply-btn", "data-testid": "reply-to", title: "Reply to this message",
        onclick: () => chat.setReply(message.message_id),
      }, "↩ Reply"));
    }
    return node;
  }

  // ---------------------------------------------------------------- modal / lightbox

  function modal(text, actions) {
    return new Promise((resolve) => {
      const box = $("[data-testid=modal]");
      $("[data-role=modal-text]", box).textContent = text;
      const close = (value) => { box.hidden = true; resolve(value); };
      $("[data-role=modal-actions]", box).replaceChildren(...actions.map((a) => el("button", {
        type: "button", class: `btn${a.primary ? " btn-primary" : ""}${a.danger ? " btn-danger" : ""}`,
        "data-testid": a.testid, onclick: () => close(a.value),
      }, a.label)));
      box.classList.remove("lightbox");
      $(".modal-box", box).hidden = false;
      box.hidden = false;
      const primary = $(".btn-primary", box);
      if (primary) primary.focus();
    });
  }

  function lightbox(src) {
    const box = el("div", { class: "modal lightbox", onclick: () => box.remove() }, el("img", { src, alt: "" }));
    document.body.append(box);
  }

  // ---------------------------------------------------------------- panes

  function mountChat(chatId, pane) {
    let chat = state.chats.get(chatId);
    if (!chat) {
      chat = new Chat(chatId, pane);
      state.chats.set(chatId, chat);
      document.querySelector(`[data-pane="${pane}"]`).append(chat.root);
      chat.root.dataset.active = String(pane !== "prospect" || chatId === state.prospectId);
      chat.root.hidden = chat.root.dataset.active !== "true";
    }
    return chat;
  }

  function setHead(pane, title, subtitle, avatarText) {
    const root = document.querySelector(`[data-pane="${pane}"]`);
    $("[data-role=title]", root).textContent = title;
    const sub = $("[data-role=subtitle]", root);
    sub.textContent = subtitle;
    sub.dataset.normal = subtitle;
    sub.classList.remove("typing");
    $("[data-role=avatar]", root).textContent = initials(avatarText || title);
  }

  const LANGUAGE_NAMES = { en: "English", uk: "Українська", ru: "Русский" };

  function renderTabs() {
    const tabs = $("[data-pane=prospect] [data-role=tabs]");
    tabs.replaceChildren(...state.config.prospects.map((p) => {
      const unread = state.unread.get(p.id) || 0;
      return el("button", {
        type: "button", class: "tab", role: "tab", "aria-selected": String(p.id === state.prospectId),
        "data-testid": "prospect-tab", dataset: { id: String(p.id) }, title: `${fullName(p)} · ${LANGUAGE_NAMES[p.language_code] || p.language_code} · id ${p.id}`,
        onclick: () => selectProspect(p.id),
      }, el("span", { text: p.first_name }), el("span", { class: "lang", text: p.language_code }),
      unread ? el("span", { class: "badge", text: String(unread) }) : null);
    }));
  }

  function selectProspect(id) {
    state.prospectId = id;
    state.unread.delete(id);
    const person = prospect(id);
    for (const p of state.config.prospects) {
      const root = mountChat(p.id, "prospect").root;
      root.hidden = p.id !== id;
      root.dataset.active = String(p.id === id);
    }
    setHead("prospect", fullName(person), `${LANGUAGE_NAMES[person.language_code] || person.language_code} · ${person.phone} · id ${person.id}`, fullName(person));
    renderTabs();
    const chat = state.chats.get(id);
    chat.scrollSoon(true);
    try { localStorage.setItem("sandbox.prospect", String(id)); } catch (_) { /* private mode */ }
  }

  function renderStaffHead() {
    const cfg = state.config;
    const select = $("[data-testid=act-as]");
    const current = state.managerId;
    select.replaceChildren(...cfg.managers.map((m) => el("option", { value: String(m.id), selected: m.id === current }, `${fullName(m)} (manager)`)));
    setHead("staff", cfg.staff.title, `group · ${cfg.managers.length} managers and the bot`, cfg.staff.title);
  }

  function applyConfig(config) {
    state.config = config;
    const known = new Set(config.prospects.map((p) => p.id));
    let wanted = state.prospectId;
    if (!known.has(wanted)) {
      let saved = null;
      try { saved = Number(localStorage.getItem("sandbox.prospect")); } catch (_) { /* private mode */ }
      wanted = known.has(saved) ? saved : config.prospects[0].id;
    }
    state.prospectId = wanted;
    if (!manager(state.managerId)) state.managerId = config.managers[0].id;
    for (const [id, chat] of state.chats) {   // prospects that no longer exist (after a reset)
      if (chat.pane === "prospect" && !known.has(id)) { chat.root.remove(); state.chats.delete(id); }
    }
    mountChat(config.staff.id, "staff");
    mountChat(config.admin.id, "admin");
    for (const p of config.prospects) mountChat(p.id, "prospect");
    selectProspect(wanted);
    renderStaffHead();
    setHead("admin", `${fullName(config.admin)}`, `admin · private chat with @${config.bot.username}`, fullName(config.admin));
    $("[data-testid=funnel-name]").textContent = config.funnel_file ? `funnel: ${config.funnel_file}` : "funnel: the default";
    setStatus(config.status);
  }

  function setStatus(status) {
    const pill = $("[data-testid=bot-status]");
    const stateName = (status && status.state) || "stopped";
    const labels = { running: "bot running", starting: "bot starting…", restarting: "bot restarting…", error: "bot stopped: error", stopped: "bot stopped", resetting: "resetting…" };
    pill.dataset.state = stateName;
    pill.textContent = labels[stateName] || stateName;
    pill.title = (status && status.detail) || "";
    const banner = $("[data-testid=banner]");
    if (stateName === "error") {
      banner.textContent = `The bot is not running. ${status.detail || ""}\nFix the problem (e.g. the funnel file), then press Reset to start it again.`;
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  function setStream(stateName, text) {
    const node = $("[data-testid=stream-state]");
    node.dataset.state = stateName;
    node.textContent = text || "";
  }

  // ---------------------------------------------------------------- loading and the live stream

  async function loadChat(chat) {
    let messages = [];
    let info = null;
    try { messages = await get(`/control/chats/${chat.id}/messages`); } catch (_) { messages = []; }
    if (messages.length || chat.pane !== "prospect") {
      try { info = await get(`/control/chats/${chat.id}`); } catch (_) { info = null; }
    }
    chat.clear();
    for (const message of messages) chat.upsert(message);
    chat.keyboard = info && info.reply_keyboard ? info.reply_keyboard : null;
    chat.renderKeyboard();
    chat.scrollSoon(true);
  }

  async function sync() {
    if (state.syncing) return state.syncing;
    state.syncing = (async () => {
      const config = await get("/sandbox/config");
      applyConfig(config);
      await Promise.all(Array.from(state.chats.values()).map(loadChat));
      connect(config.event_seq);
    })().finally(() => { state.syncing = null; });
    return state.syncing;
  }

  function connect(since) {
    if (state.source) state.source.close();
    state.lastSeq = since;
    const source = new EventSource(`/control/events?since=${since}`);
    state.source = source;
    source.onopen = () => { state.retry = 1000; setStream("live", ""); };
    source.onmessage = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (_) { return; }
      if (data.seq <= state.lastSeq) return;
      state.lastSeq = data.seq;
      try { handle(data); } catch (error) { console.error("event", data, error); }
    };
    source.onerror = () => {
      source.close();
      if (state.source !== source) return;
      state.source = null;
      setStream("down", "connection lost, reconnecting…");
      setTimeout(resync, state.retry);
      state.retry = Math.min(state.retry * 2, 10000);
    };
  }

  function resync() {
    sync().catch(() => {
      setStream("down", "the sandbox is not answering, retrying…");
      setTimeout(resync, state.retry);
      state.retry = Math.min(state.retry * 2, 10000);
    });
  }

  let resetInProgress = false;

  function handle(event) {
    switch (event.type) {
      case "message":
      case "edit": {
        const message = event.message;
        const chatId = event.chat_id;
        const pane = paneOf(chatId);
        if (!pane) return;
        const chat = mountChat(chatId, pane);
        const isNew = chat.upsert(message, { animate: event.type === "message" });
        if (event.type === "message" && event.from_bot) chat.applyMarkup(message.reply_markup);
        if (isNew && pane === "prospect" && chatId !== state.prospectId && event.from_bot) {
          state.unread.set(chatId, (state.unread.get(chatId) || 0) + 1);
          renderTabs();
        }
        return;
      }
      case "delete": {
        const chat = state.chats.get(event.chat_id);
        if (chat) chat.remove(event.message_id);
        return;
      }
      case "callback_answer": {
        const node = state.pendingQueries.get(event.callback_query_id);
        if (node) { node.classList.remove("pending"); state.pendingQueries.delete(event.callback_query_id); }
        const chat = state.chats.get(event.chat_id);
        const answer = event.answer || {};
        if (chat && answer.text) chat.showToast(answer.text, Boolean(answer.show_alert));
        if (answer.url) { const url = safeUrl(answer.url); if (url) window.open(url, "_blank", "noopener"); }
        return;
      }
      case "chat_action": {
        const chat = state.chats.get(event.chat_id);
        if (chat && event.action === "typing") chat.setTyping(true);
        return;
      }
      case "reset": {
        for (const chat of state.chats.values()) chat.clear();
        state.unread.clear();
        if (!resetInProgress) get("/sandbox/config").then(applyConfig).catch(() => {});
        return;
      }
      case "sandbox": {
        if (event.what === "status") setStatus(event.status);
        if (event.what === "prospects") {
          state.config.prospects = event.prospects;
          for (const p of event.prospects) mountChat(p.id, "prospect");
          renderTabs();
        }
        return;
      }
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- controls

  function setupControls() {
    $("[data-testid=act-as]").addEventListener("change", (event) => {
      state.managerId = Number(event.target.value);
    });

    const form = $("[data-testid=add-prospect-form]");
    const languages = $("select[name=language_code]", form);
    $("[data-testid=add-prospect]").addEventListener("click", () => {
      languages.replaceChildren(...(state.config.languages || ["en"]).map((code) => el("option", { value: code }, `${code} · ${LANGUAGE_NAMES[code] || code}`)));
      form.hidden = !form.hidden;
      if (!form.hidden) $("input[name=first_name]", form).focus();
    });
    $("[data-role=cancel]", form).addEventListener("click", () => { form.hidden = true; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = $("input[name=first_name]", form).value.trim();
      if (!name) return;
      try {
        const added = await post("/sandbox/prospects", { first_name: name, language_code: languages.value });
        if (!prospect(added.id)) state.config.prospects.push(added);
        mountChat(added.id, "prospect");
        selectProspect(added.id);
        $("input[name=first_name]", form).value = "";
        form.hidden = true;
      } catch (error) {
        modal(`Could not add the prospect: ${error.message}`, [{ label: "OK", primary: true }]);
      }
    });

    $("[data-testid=reset]").addEventListener("click", async () => {
      const go = await modal(
        "Start clean?\n\nThis stops the bot, deletes the sandbox database (every lead, prospect and note) and clears all chats, then starts the bot again.",
        [{ label: "Cancel", value: false, testid: "reset-cancel" }, { label: "Reset", value: true, danger: true, primary: true, testid: "reset-confirm" }],
      );
      if (!go) return;
      const button = $("[data-testid=reset]");
      button.disabled = true;
      resetInProgress = true;
      setStatus({ state: "resetting" });
      try {
        const result = await post("/sandbox/reset");
        state.prospectId = null;
        state.unread.clear();
        try { localStorage.removeItem("sandbox.prospect"); } catch (_) { /* private mode */ }
        applyConfig(result);
        await Promise.all(Array.from(state.chats.values()).map(loadChat));
      } catch (error) {
        modal(`Reset failed: ${error.message}`, [{ label: "OK", primary: true }]);
      } finally {
        resetInProgress = false;
        button.disabled = false;
      }
    });

    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        $$(".modal.lightbox").forEach((n) => n.remove());
        for (const chat of state.chats.values()) { chat.cmdMenu.hidden = true; if (chat.pane === "staff") chat.setReply(null); }
      }
    });
  }

  // ---------------------------------------------------------------- start

  setupControls();
  resync();
  window.sandbox = { state, sync };  // for debugging in the browser console
})();
