/* mh_control: being written (issue 5) */
typedef int mh_control_placeholder;
