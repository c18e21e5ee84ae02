error-apology = 😔 Sorry, something went wrong on our side and your last message was not processed. Please send it again in a moment.
flood-slow-down = ⏳ You are sending messages very quickly. Please wait { $seconds } seconds, then continue.
help-general =
    ℹ️ I help you send a request to our team.
    /start — start or update your request
    /manager — talk to a manager
    /language — change the language
    /mydata — see what we store about you
    /forget — erase your data
    /cancel — cancel the current questions
help-dialogue =
    ℹ️ You are answering a few questions. Answer with the buttons or type your answer.
    ⬅️ Back returns to the previous question; you can also change any answer before you confirm.
    /manager — talk to a manager now
    /restart — start the questions again
    /cancel — stop without sending
    /language — change the language
language-pick = Choose your language:
language-set = ✅ The language is now English.
mydata-nothing = We don't store any personal data about you.
mydata-summary =
    🗂 What we store about you:
    Name: { $name }
    Phone: { $phone }
    Email: { $email }
    Requests: { $leads }
    The attached file contains everything, including your answers and messages.
mydata-file = Your data (JSON)
forget-confirm = ⚠️ Erase your name, phone, email, answers and messages? This cannot be undone. Our statistics keep only anonymous counts.
forget-yes = 🗑 Yes, erase my data
forget-no = Keep my data
forget-kept = Nothing was erased.
forget-done = ✅ Your personal data has been erased. Send /start if you ever want to contact us again.
