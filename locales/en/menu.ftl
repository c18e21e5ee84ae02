# The prospect's menu after the dialogue (handlers/menu.py).
menu-unavailable = This menu item is no longer available.
menu-no-lead = You don't have an open request yet. Send /start to leave one.
menu-demo-booked = Great! A manager will contact you soon to pick a time for the demo.
menu-ask-question = Type your question in the next message — a manager will answer right here.
menu-manager-notified = We've notified a manager — they will message you here soon.
menu-question-sent = ✅ Your question has been passed to a manager. The answer will come right here.
# after the handoff: what the prospect wrote went to their manager (not repeated for every message)
menu-relayed = ✅ Passed to a manager. The answer will come right here.
menu-unknown-command = I don't know this command. Send /start to leave a request or /help for help.
menu-hint = To leave a request, send /start.
menu-hint-menu = Your request is with us. Use the menu below: ask a question or talk to a manager.
# what the prospect sent instead of text (shown to managers)
menu-media = { $kind ->
    [photo] 📷 [photo]
    [video] 🎬 [video]
    [video_note] 🎥 [video message]
    [animation] 🎞 [GIF]
    [voice] 🎤 [voice message]
    [audio] 🎵 [audio]
    [document] 📎 [file]
    [sticker] 🙂 [sticker]
    [contact] 👤 [contact]
    [location] 📍 [location]
    [venue] 📍 [place]
    [poll] 📊 [poll]
    [dice] 🎲 [dice]
   *[other] 📦 [attachment]
}
