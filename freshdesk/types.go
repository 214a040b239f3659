package freshdesk

import (
	"encoding/json"
	"time"
)

// Ticket is a Freshdesk ticket as returned by GET /api/v2/tickets/{id}.
// Only the fields the bridge uses are decoded; the rest are ignored.
type Ticket struct {
	ID              int64          `json:"id"`
	Subject         string         `json:"subject"`
	Description     string         `json:"description"`      // HTML
	DescriptionText string         `json:"description_text"` // plain text
	Status          int            `json:"status"`
	Priority        int            `json:"priority"`
	Type            string         `json:"type"`
	RequesterID     int64          `json:"requester_id"`
	Requester       *Requester     `json:"requester,omitempty"` // set by Client.Ticket (include=requester)
	Tags            []string       `json:"tags"`
	CustomFields    map[string]any `json:"custom_fields"`
	Attachments     []Attachment   `json:"attachments"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

// Requester is the contact who raised a ticket (the "requester" object of
// include=requester).
type Requester struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Mobile string `json:"mobile,omitempty"`
	Phone  string `json:"phone,omitempty"`
}

// Conversation is a reply or note on a ticket.
type Conversation struct {
	ID          int64        `json:"id"`
	TicketID    int64        `json:"ticket_id"`
	Body        string       `json:"body"`      // HTML
	BodyText    string       `json:"body_text"` // plain text
	Incoming    bool         `json:"incoming"`
	Private     bool         `json:"private"`
	UserID      int64        `json:"user_id"`
	Source      int          `json:"source"`
	FromEmail   string       `json:"from_email,omitempty"`
	ToEmails    []string     `json:"to_emails,omitempty"`
	Attachments []Attachment `json:"attachments"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

// Attachment is a file on a ticket or conversation. AttachmentURL is a
// pre-signed URL that expires after a few minutes; download it with
// Client.OpenAttachment.
type Attachment struct {
	ID            int64     `json:"id"`
	Name          string    `json:"name"`
	ContentType   string    `json:"content_type"`
	Size          int64     `json:"size"`
	AttachmentURL string    `json:"attachment_url"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// UnmarshalJSON decodes an attachment, accepting its size as either "size"
// (the reply examples and real responses) or "file_size" (the documentation's
// note-with-attachment example).
func (a *Attachment) UnmarshalJSON(b []byte) error {
	type plain Attachment
	var v struct {
		plain
		FileSize *int64 `json:"file_size"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = Attachment(v.plain)
	if a.Size == 0 && v.FileSize != nil {
		a.Size = *v.FileSize
	}
	return nil
}

// Agent is a help-desk agent (GET /api/v2/agents/{id}); Name and Email come
// from its "contact" object.
type Agent struct {
	ID    int64
	Name  string
	Email string
}

// UnmarshalJSON decodes an agent with its nested contact.
func (a *Agent) UnmarshalJSON(b []byte) error {
	var v struct {
		ID      int64 `json:"id"`
		Contact struct {
			Name  string `json:"name"`
			Email string `json:"email"`
		} `json:"contact"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = Agent{ID: v.ID, Name: v.Contact.Name, Email: v.Contact.Email}
	return nil
}
